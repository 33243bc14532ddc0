"""`mlopsctl init`: turn a directory into an mlopsctl project, starting from a bundled example.

Idempotent: a second run only adds what is missing and never overwrites a file of the user's;
what mlopsctl generates (the JSON Schemas, its block of CODEOWNERS, its keys of the editor
settings) is brought up to date. The work is here, below the CLI, so that it can be called (and
tested) without click; the command only prints what :func:`init_project` reports.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mlopsctl.errors import MlopsctlError, SpecError, did_you_mean
from mlopsctl.fsutil import atomic_write

DEFAULT_EXAMPLE = "breast-cancer"
DEFAULT_REMOTE = "storage"
#: Where init puts the JSON Schemas: committed with the repository (unlike .mlopsctl/, which git
#: ignores), so that every clone's editor finds them without a network.
SCHEMA_DIR = ".schemas/mlopsctl"
VSCODE_SETTINGS = ".vscode/settings.json"
MODELINE = "# yaml-language-server: $schema="


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

    result.steps += _editor_support(root)
    result.steps += _codeowners(root)

    if remote_url:
        name = _project_remote(root) or DEFAULT_REMOTE
        dvc.configure_remote(root, name, remote_url)
        result.remote = name
        result.steps.append(f"configured DVC remote '{name}' -> {remote_url} (default)")
    return result


def _project_doc(root: Path) -> dict[str, Any]:
    """mlopsctl.yaml as plain values ({} when it is not a mapping)."""
    from mlopsctl.spec.loader import PROJECT_FILE
    from mlopsctl.spec.yamlio import load_yaml

    doc, _ = load_yaml((root / PROJECT_FILE).read_text("utf-8"), PROJECT_FILE)
    return doc.data if isinstance(doc.data, dict) else {}


def _project_remote(root: Path) -> str | None:
    """The remote mlopsctl.yaml names, if any (a kept project file may name its own)."""
    remote = _project_doc(root).get("remote")
    return str(remote) if remote else None


# --- editors: JSON Schemas, the modeline, .vscode/settings.json -------------------------------


def schema_files() -> dict[str, bytes]:
    """The published JSON Schemas (``mlopsctl/schemas/*.schema.json``), by file name."""
    folder = resources.files("mlopsctl").joinpath("schemas")
    return {
        entry.name: entry.read_bytes()
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".schema.json")
    }


def write_schemas(dest: Path) -> tuple[list[str], list[str]]:
    """Write every JSON Schema into *dest* atomically: (written, already current) file names.

    A file that already holds these exact bytes is left alone, so a second run changes nothing.
    """
    written: list[str] = []
    current: list[str] = []
    for name, data in schema_files().items():
        target = dest / name
        try:
            same = target.is_file() and not target.is_symlink() and target.read_bytes() == data
        except OSError:
            same = False
        if same:
            current.append(name)
        else:
            atomic_write(target, data)
            written.append(name)
    return written, current


def stale_schemas(root: Path) -> list[str]:
    """The schemas in the repository's :data:`SCHEMA_DIR` that differ from this mlopsctl's
    (an upgrade since init); [] when the folder is absent. Reads only regular files inside the
    repository."""
    from mlopsctl.spec.paths import UnsafePathError, inside_repo

    try:
        folder = inside_repo(root, SCHEMA_DIR)
    except UnsafePathError:
        return []
    if not folder.is_dir():
        return []
    stale = []
    for name, data in schema_files().items():
        try:
            path = inside_repo(root, f"{SCHEMA_DIR}/{name}")
            # the size first: a huge file committed there is not read to find it differs
            same = path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data
        except (OSError, UnsafePathError):
            same = False
        if not same:
            stale.append(f"{SCHEMA_DIR}/{name}")
    return stale


def point_at_local_schema(text: str, rel: str) -> str:
    """*text* (a YAML file at repository path *rel*) with its ``yaml-language-server`` line
    pointing at the schema in :data:`SCHEMA_DIR`, by a path relative to the file.

    Editors resolve a relative ``$schema`` against the file itself; the published ``$id`` URL
    is an identifier, not a download. Text without such a first line is returned unchanged.
    """
    first, sep, rest = text.partition("\n")
    if not first.startswith(MODELINE):
        return text
    value = first[len(MODELINE) :].split()
    name = posixpath.basename(value[0]) if value else ""
    if name not in schema_files():
        return text
    target = posixpath.relpath(f"{SCHEMA_DIR}/{name}", posixpath.dirname(rel) or ".")
    return f"{MODELINE}{target}{sep}{rest}"


def vscode_settings(text: str | None, usecase_globs: Sequence[str]) -> str | None:
    """*text* (``.vscode/settings.json``, None when absent) with ``yaml.schemas`` mapping the
    project file and the use-case globs to the local schemas; every other key is kept.

    Returns None when *text* is not a JSON object (VS Code also accepts comments, which a
    rewrite would lose): the caller leaves the file alone and says so.
    """
    try:
        settings: Any = json.loads(text) if text is not None and text.strip() else {}
    except ValueError:
        return None
    if not isinstance(settings, dict):
        return None
    schemas = settings.setdefault("yaml.schemas", {})
    if not isinstance(schemas, dict):
        return None
    schemas[f"./{SCHEMA_DIR}/project.schema.json"] = "mlopsctl.yaml"
    schemas[f"./{SCHEMA_DIR}/usecase.schema.json"] = [posixpath.normpath(g) for g in usecase_globs]
    return json.dumps(settings, indent=2, ensure_ascii=False) + "\n"


def _editor_support(root: Path) -> list[str]:
    """Schemas into the repository and the editor settings that use them: init's steps."""
    from mlopsctl.spec.paths import inside_repo

    steps = []
    written, _current = write_schemas(inside_repo(root, SCHEMA_DIR))
    if written:
        steps.append(f"wrote the JSON Schemas to {SCHEMA_DIR}/ ({', '.join(written)})")
    globs = _project_doc(root).get("usecases") or ["usecases/*.yaml"]
    globs = [str(g) for g in (globs if isinstance(globs, list) else [globs])]
    try:
        path = inside_repo(root, VSCODE_SETTINGS)
        old = path.read_text("utf-8") if path.exists() else None
        new = vscode_settings(old, globs)
    except (OSError, UnicodeDecodeError, MlopsctlError):
        new = None
    if new is None:
        steps.append(
            f"warning: left {VSCODE_SETTINGS} alone (not a readable JSON object): map "
            f"{SCHEMA_DIR}/usecase.schema.json to your use cases in yaml.schemas yourself"
        )
    elif new != old:
        atomic_write(path, new)
        verb = "wrote" if old is None else "added yaml.schemas to"
        steps.append(f"{verb} {VSCODE_SETTINGS} (editors validate the YAML as you type)")
    return steps


def _codeowners(root: Path) -> list[str]:
    """mlopsctl's block of CODEOWNERS from the use cases' owners: init's steps."""
    from mlopsctl.gitops.codeowners import codeowners_state, write_codeowners
    from mlopsctl.spec.loader import load_project

    try:
        project = load_project(root)
    except SpecError:
        return ["warning: skipped CODEOWNERS: the specs do not validate (see mlopsctl validate)"]
    try:
        state = codeowners_state(root, project.usecases)
        steps = [f"warning: {w}" for w in state.warnings]
        if write_codeowners(root, state):
            steps.append(f"wrote the owners of each use case into {state.path}")
    except MlopsctlError as exc:
        return [f"warning: skipped CODEOWNERS: {exc.message}"]
    return steps


_LOCAL_DIRS = frozenset({"__pycache__", ".mlopsctl"})


def _copy_example(src: Path, dst: Path) -> tuple[list[str], list[str]]:
    """Copy every file of the example that *dst* lacks: (written, kept) repo-relative paths.

    Everything the example refers to comes along (its data and the script that regenerates it),
    so that the new repository is complete on its own.
    """
    written: list[str] = []
    kept: list[str] = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        # local leftovers of running the example in place (mlopsctl's caches, bytecode) stay
        if not path.is_file() or path.suffix == ".pyc" or _LOCAL_DIRS & set(rel.split("/")):
            continue
        target = dst / rel
        if target.exists() or target.is_symlink():
            kept.append(rel)
            continue
        data = path.read_bytes()
        if path.suffix in (".yaml", ".yml"):
            data = point_at_local_schema(data.decode("utf-8"), rel).encode("utf-8")
        atomic_write(target, data)
        written.append(rel)
    return written, kept
