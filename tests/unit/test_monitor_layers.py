"""The monitoring package stays a leaf: it imports only errors and spec of ours, and the light
layers (spec, compile, plan, report) never import it, so `plan` and `validate` stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "mlopsctl"


def _ours(path: Path) -> set[str]:
    """The mlopsctl modules *path* imports (anywhere in it, relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                out.add(".".join([*base, node.module] if node.module else base))
            else:
                out.add(node.module or "")
    return {m for m in out if m == "mlopsctl" or m.startswith("mlopsctl.")}


def test_monitor_imports_only_errors_spec_and_itself() -> None:
    allowed = ("mlopsctl.errors", "mlopsctl.fsutil", "mlopsctl.spec", "mlopsctl.monitor")
    bad = {
        (p.name, m)
        for p in sorted((PACKAGE / "monitor").glob("*.py"))
        for m in _ours(p)
        if not any(m == a or m.startswith(a + ".") for a in allowed)
    }
    assert bad == set()


def test_light_layers_never_import_monitor() -> None:
    bad = {
        (str(p.relative_to(ROOT)), m)
        for layer in ("spec", "compile", "plan", "report")
        for p in sorted((PACKAGE / layer).rglob("*.py"))
        for m in _ours(p)
        if m.startswith("mlopsctl.monitor")
    }
    assert bad == set()


def test_importing_the_package_imports_nothing_heavy() -> None:
    code = (
        "import sys, mlopsctl.monitor; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'numpy', 'pandas', 'scipy', 'pyarrow', 'sklearn'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
