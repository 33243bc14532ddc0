"""docs/spec.md is generated from the schemas and must never drift from them."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_spec_docs.py"
DOC = ROOT / "docs" / "spec.md"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_spec_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def test_spec_md_is_up_to_date() -> None:
    fresh = _generator().render()
    assert DOC.read_text(encoding="utf-8") == fresh, (
        "docs/spec.md is stale: run `python scripts/gen_spec_docs.py`"
    )


def test_rendering_is_deterministic() -> None:
    gen = _generator()
    assert gen.render() == gen.render()


def _leaf_paths(node: object, path: str = "") -> set[str]:
    """Dotted paths of every property of the use-case schema's sections."""
    out: set[str] = set()
    if isinstance(node, dict):
        for key, sub in node.get("properties", {}).items():
            out.add(f"{path}.{key}" if path else key)
            out |= _leaf_paths(sub, f"{path}.{key}" if path else key)
    return out


def test_every_documented_key_of_the_schema_appears() -> None:
    doc = DOC.read_text(encoding="utf-8")
    usecase = json.loads((ROOT / "mlopsctl/schemas/usecase.schema.json").read_text("utf-8"))
    missing = [p for p in sorted(_leaf_paths(usecase)) if f"`{p}`" not in doc]
    assert missing == []
    for key in ("data.split.test_size", "deploy.rest.port", "stages[].before", "infra.dask"):
        assert f"`{key}`" in doc
    # Shared types are documented once and linked.
    assert '<a id="type-source"></a>' in doc and "(#type-source)" in doc


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "spec.md"
    stale.write_text("# old\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "-o", str(stale)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "out of date" in result.stderr
    fresh = subprocess.run([sys.executable, str(SCRIPT), "--check", "-o", str(DOC)], check=False)
    assert fresh.returncode == 0
