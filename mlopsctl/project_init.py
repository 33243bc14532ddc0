"""`mlopsctl init`: turn a directory into an mlopsctl project, starting from a bundled example.

Idempotent: a second run only adds what is missing and never overwrites a file. The work is
here, below the CLI, so that it can be called (and tested) without click; the command only
prints what :func:`init_project` reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from mlopsctl.errors import MlopsctlError, did_you_mean
from mlopsctl.fsutil import atomic_write

DEFAULT_EXAMPLE = "breast-cancer"
DEFAULT_REMOTE = "storage"


@dataclass
class InitResult:
    """What init did, in the order it did it (one line per step, for the user)."""

    root: Path
    steps: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    tracked: list[str] = field(default_factory=list)
    remote: str | None = None


def examples_dir() -> Path:
    """Where the bundled examples live (``mlopsctl/examples``, shipped as package data)."""
    return Path(str(resources.files("mlopsctl").joinpath("examples")))


def available_examples() -> list[str]:
    d = examples_dir()
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if (p / "mlopsctl.yaml").is_file())


def init_project(
    root: Path, example: str = DEFAULT_EXAMPLE, remote_url: str | None = None
) -> InitResult:
    """git init if needed, dvc init, copy *example* in, track its data with DVC, set a remote.

    Raises MlopsctlError for an unknown example or a *root* below the top of a git work tree,
    before anything is written.
    """
    from mlopsctl.integrations import dvc, git

    examples = available_examples()
    if example not in examples:
        hint = did_you_mean(example, examples)
        raise MlopsctlError(
            f"unknown example '{example}'; available: {', '.join(examples)}"
            + (f" ({hint})" if hint else "")
        )
    result = InitResult(root)
    if git.ensure_repo(root):
        result.steps.append("initialised git repository")
    top = Path(str(git.open_repo(root).working_tree_dir)).resolve()
    if top != root.resolve():
        # DVC, dvc.lock paths and apply's commits all work from the top of the work tree
        raise MlopsctlError(
            f"{root} is inside the git repository {top}: run `mlopsctl init` at its top level"
        )
    if dvc.ensure_initialised(root):
        result.steps.append("initialised DVC (analytics off)")

    result.written, result.kept = _copy_example(examples_dir() / example, root)
    result.steps += [f"wrote {rel}" for rel in result.written]
    result.steps += [f"kept existing {rel}" for rel in result.kept]

    if git.ensure_ignored(root, ".mlopsctl/", "mlopsctl local cache and locks"):
        result.steps.append("added .mlopsctl/ to .gitignore")

    # the example's data files are DVC-tracked, like any data source should be
    data = [rel for rel in result.written if rel.startswith("data/") and not rel.endswith(".py")]
    result.tracked = [rel for rel in data if not (root / f"{rel}.dvc").exists()]
    if result.tracked:
        dvc.add(root, result.tracked)
        result.steps += [f"tracked {rel} with DVC ({rel}.dvc)" for rel in result.tracked]

    if remote_url:
        name = _project_remote(root) or DEFAULT_REMOTE
        dvc.configure_remote(root, name, remote_url)
        result.remote = name
        result.steps.append(f"configured DVC remote '{name}' -> {remote_url} (default)")
    return result


def _project_remote(root: Path) -> str | None:
    """The remote mlopsctl.yaml names, if any (a kept project file may name its own)."""
    from mlopsctl.spec.loader import PROJECT_FILE
    from mlopsctl.spec.yamlio import load_yaml

    doc, _ = load_yaml((root / PROJECT_FILE).read_text("utf-8"), PROJECT_FILE)
    remote = (doc.data or {}).get("remote") if isinstance(doc.data, dict) else None
    return str(remote) if remote else None


def _copy_example(src: Path, dst: Path) -> tuple[list[str], list[str]]:
    """Copy every file of the example that *dst* lacks: (written, kept) repo-relative paths.

    Everything the example refers to comes along (its data and the script that regenerates it),
    so that the new repository is complete on its own.
    """
    written: list[str] = []
    kept: list[str] = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if not path.is_file() or "__pycache__" in rel or path.suffix == ".pyc":
            continue
        target = dst / rel
        if target.exists() or target.is_symlink():
            kept.append(rel)
            continue
        atomic_write(target, path.read_bytes())
        written.append(rel)
    return written, kept
