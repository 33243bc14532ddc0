"""The light commands stay light, and the layers import only downwards.

`--help`, `validate` and `plan` must never import the heavy libraries (pandas, scikit-learn, DVC,
Dask, ...): each is run in a fresh interpreter that then lists what got imported.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

Cli = Callable[..., "subprocess.CompletedProcess[str]"]
ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "mlopsctl"
HEAVY = frozenset(
    {
        "pandas",
        "sklearn",
        "dvc",
        "dask",
        "fsspec",
        "scipy",
        "skops",
        "matplotlib",
        "numpy",
        "pyarrow",
        "networkx",
    }
)

CHECK = """
import json, sys
from mlopsctl.cli.main import main
try:
    main({argv!r})
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


def heavy_imports(argv: list[str], cwd: Path) -> tuple[object, list[str], str]:
    """Run ``main(argv)`` in a fresh interpreter: its exit code and the heavy modules imported."""
    script = CHECK.format(argv=argv, heavy=set(HEAVY))
    env = {"DVC_NO_ANALYTICS": "1", "NO_COLOR": "1", "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    env["PYTHONPATH"] = str(ROOT)  # this checkout's mlopsctl, not whichever one is installed
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    result = json.loads(last)
    return result["code"], result["heavy"], proc.stdout + proc.stderr


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    code, heavy, out = heavy_imports(["--help"], tmp_path)
    assert code == 0, out
    assert heavy == []


def test_validate_imports_nothing_heavy(tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(ROOT / "tests" / "fixtures" / "spec_example", root)
    code, heavy, out = heavy_imports(["-C", str(root), "validate"], tmp_path)
    assert code == 0, out
    assert heavy == []
    code, heavy, out = heavy_imports(["-C", str(root), "validate", "--format", "json"], tmp_path)
    assert code == 0, out
    assert heavy == []


def test_schema_and_codeowners_import_nothing_heavy(tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(ROOT / "tests" / "fixtures" / "spec_example", root)
    for argv in (["schema", "--output", "out"], ["codeowners"], ["codeowners", "--check"]):
        code, heavy, out = heavy_imports(["-C", str(root), *argv], tmp_path)
        assert code == 0, out
        assert heavy == [], f"`mlopsctl {' '.join(argv)}` imported {heavy}"


def test_plan_imports_nothing_heavy(git_repo: Path, cli: Cli) -> None:
    init = cli("-C", git_repo, "init", "--example", "house-prices")
    assert init.returncode == 0, init.stdout + init.stderr
    code, heavy, out = heavy_imports(["-C", str(git_repo), "plan"], git_repo)
    assert code == 0, out
    assert heavy == [], f"`mlopsctl plan` imported {heavy}"
    code, heavy, out = heavy_imports(["-C", str(git_repo), "plan", "--format", "json"], git_repo)
    assert code == 0, out
    assert heavy == [], f"`mlopsctl plan --format json` imported {heavy}"


def test_git_readers_import_nothing_heavy(git_repo: Path, cli: Cli) -> None:
    """The pull-request comment, diff and history read git and JSON only."""
    init = cli("-C", git_repo, "init", "--example", "house-prices")
    assert init.returncode == 0, init.stdout + init.stderr
    subprocess.run(["git", "add", "-A"], cwd=git_repo, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=git_repo, check=True)
    for argv in (
        ["plan", "--format", "markdown"],
        ["plan", "--format", "markdown", "--base", "HEAD"],
        ["diff"],
        ["diff", "--format", "json"],
        ["history", "house-prices"],
    ):
        code, heavy, out = heavy_imports(["-C", str(git_repo), *argv], git_repo)
        assert code == 0, out
        assert heavy == [], f"`mlopsctl {' '.join(argv)}` imported {heavy}"


# --- layering --------------------------------------------------------------------------------


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """Every module *path* imports (anywhere in it, including inside functions), by line."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # `from mlopsctl import cli` imports mlopsctl.cli
                yield node.lineno, f"{module}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", ""))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _sources(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (PACKAGE / pkg).rglob("*.py"))


def _violations(files: list[Path], forbidden: object) -> list[str]:
    out = []
    for path in files:
        for line, module in imports_of(path):
            if _within(module, "mlopsctl") and forbidden(module):  # type: ignore[operator]
                out.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    return sorted(set(out))


def test_spec_imports_only_errors_and_spec() -> None:
    files = _sources("spec")
    assert files
    allowed = ("mlopsctl.errors", "mlopsctl.spec", "mlopsctl.fsutil")
    bad = _violations(files, lambda m: not any(_within(m, a) for a in allowed))
    assert bad == []


def test_fsutil_is_a_leaf() -> None:
    """Every layer may write files through it, so it may import nothing of ours."""
    assert _violations([PACKAGE / "fsutil.py"], lambda m: True) == []


@pytest.mark.parametrize("layer", ["plan", "compile"])
def test_plan_and_compile_never_import_execution(layer: str) -> None:
    files = _sources(layer)
    assert files
    forbidden = ("mlopsctl.execute", "mlopsctl.stages", "mlopsctl.integrations", "mlopsctl.cli")
    assert _violations(files, lambda m: any(_within(m, f) for f in forbidden)) == []


def test_only_the_cli_imports_the_cli() -> None:
    files = [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if not _within(_module_name(p), "mlopsctl.cli") and p.name != "__main__.py"
    ]
    assert _violations(files, lambda m: _within(m, "mlopsctl.cli")) == []


def test_the_import_scanner_sees_all_forms(tmp_path: Path) -> None:
    pkg = tmp_path / "mlopsctl" / "plan"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text(
        "import mlopsctl.cli.main\n"
        "from ..execute import apply\n"
        "from mlopsctl import stages\n"
        "def f():\n"
        "    import importlib\n"
        "    importlib.import_module('mlopsctl.integrations.dvc')\n",
        "utf-8",
    )
    found = {m for _line, m in imports_of(pkg / "x.py", root=tmp_path)}
    assert {
        "mlopsctl.cli.main",
        "mlopsctl.execute",
        "mlopsctl.execute.apply",
        "mlopsctl.stages",
        "mlopsctl.integrations.dvc",
    } <= found


def test_environment_versions_match_package_metadata() -> None:
    from importlib import metadata

    from mlopsctl.compile.environment import TRACKED, environment

    env = environment()
    for dist in TRACKED:
        assert env[dist] == metadata.version(dist)


def test_views_never_import_execution() -> None:
    files = _sources("report")
    assert files
    forbidden = ("mlopsctl.execute", "mlopsctl.stages", "mlopsctl.cli")
    assert _violations(files, lambda m: any(_within(m, f) for f in forbidden)) == []
