"""Load a project: mlopsctl.yaml, then every use-case file its globs name.

Every problem of every file is collected and raised once as a :class:`SpecError`, so that a
user fixes them all in one round.
"""

from __future__ import annotations

import glob
import os
import posixpath
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsctl.errors import Diagnostic, ProjectNotFoundError, SpecError
from mlopsctl.spec.cache import SpecCache, content_md5, key_of
from mlopsctl.spec.document import YamlDocument
from mlopsctl.spec.model import Infra, Project, ProjectConfig, UseCase, UseCaseFile, build
from mlopsctl.spec.paths import UnsafePathError, file_kind, inside_repo
from mlopsctl.spec.schema import validate_against_schema
from mlopsctl.spec.semantic import (
    ProjectContext,
    check_usecase,
    overlapping_outputs,
    path_problem,
    unique_names,
)

PROJECT_FILE = "mlopsctl.yaml"
MLOPSCTL_DIR = ".mlopsctl"


def find_project_root(start: Path) -> Path:
    """The nearest directory at or above *start* holding mlopsctl.yaml.

    Any entry of that name counts (a dangling link, a directory): loading it then says what is
    wrong with it, rather than silently using a project further up.
    """
    start = start.resolve()
    for d in (start, *start.parents):
        if os.path.lexists(d / PROJECT_FILE):
            return d
    raise ProjectNotFoundError(
        f"no {PROJECT_FILE} in {start} or any parent directory (run `mlopsctl init` first)"
    )


@dataclass(frozen=True)
class SpecBytes:
    """The bytes of a spec file, with the stat of the file they were read from."""

    data: bytes
    key: list[int] | None


def read_spec(
    path: Path, display: str, root: Path | None = None
) -> tuple[SpecBytes | None, list[Diagnostic]]:
    """The bytes of the spec file *path*, or why it cannot be read (never raises).

    Only a regular file is read. When *path* is inside *root* it must resolve inside it too: a
    use-case file that is a symlink out of the repository is refused, unread.
    """

    def problem(message: str) -> tuple[None, list[Diagnostic]]:
        return None, [Diagnostic(display, 1, 1, "", message)]

    real = path
    rel = _relative(root, path) if root is not None else None
    if rel is not None and root is not None:
        try:
            real = inside_repo(root, rel)
        except UnsafePathError as exc:
            return problem(f"spec file {exc.problem}")
    try:
        before = os.lstat(real)
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):
            return problem(f"is a dangling symlink (to '{os.readlink(path)}')")
        return problem("file not found")
    except OSError as exc:
        return problem(f"cannot read: {exc.strerror}")
    if not stat.S_ISREG(before.st_mode):
        return problem(f"is {file_kind(before.st_mode)}, not a regular file")
    try:
        # no blocking (a FIFO swapped in would wait for a writer), no symlink swapped in
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    except OSError as exc:
        return problem(f"cannot read: {exc.strerror}")
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return problem("is not a regular file")
        data = fh.read()
        key = key_of(os.fstat(fd))
    return SpecBytes(data, key), []


def parse_document(data: bytes, display: str) -> tuple[YamlDocument, list[Diagnostic]]:
    """Parse the bytes of one YAML file; a top level that is not a mapping is a diagnostic."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return YamlDocument(display, None, None), [
            Diagnostic(display, 1, 1, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        ]
    from mlopsctl.spec.yamlio import load_yaml  # the parser: only for a file not cached

    doc, diags = load_yaml(text, display)
    if diags and doc.root is None:
        return doc, diags
    if doc.data is None:
        diags.append(Diagnostic(display, 1, 1, "", "file is empty; expected a mapping"))
    elif not isinstance(doc.data, dict):
        line, col = doc.locate(())
        kind = "a list" if isinstance(doc.data, list) else f"a {type(doc.data).__name__}"
        diags.append(
            Diagnostic(display, line, col, "", f"expected a mapping at the top level, got {kind}")
        )
    return doc, diags


def read_document(
    path: Path, display: str, root: Path | None = None
) -> tuple[YamlDocument, list[Diagnostic]]:
    """Read (safely, see :func:`read_spec`) and parse one YAML file."""
    raw, diags = read_spec(path, display, root)
    if raw is None:
        return YamlDocument(display, None, None), diags
    return parse_document(raw.data, display)


def load_project(root: Path) -> Project:
    """Load and check the whole project at *root*; raise SpecError with every problem."""
    raw, config_diags = read_spec(root / PROJECT_FILE, PROJECT_FILE, root)
    if raw is None:
        raise SpecError(config_diags)
    # mlopsctl writes its cache, locks, logs and staged outputs under .mlopsctl/; git ignores
    # it as a folder, so a pull request can still commit a *symlink* of that name
    try:
        inside_repo(root, MLOPSCTL_DIR)
    except UnsafePathError as exc:
        raise UnsafePathError(
            exc.rel, f"{exc.problem} (mlopsctl keeps its cache, locks and logs there)"
        ) from None
    cache = SpecCache(root, content_md5(raw.data))
    config, config_diags = _load_config(root, cache, raw)
    diags = list(config_diags)
    files = _usecase_files(root, config) if config is not None else []
    usecase_dirs = _usecase_dirs(config) if config is not None else frozenset()
    if config is not None and not files:
        diags.append(
            Diagnostic(
                PROJECT_FILE,
                1,
                1,
                "usecases",
                "no use-case files match " + ", ".join(config.usecases),
            )
        )
    usecases, uc_diags = load_usecases(root, files, config, cache, usecase_dirs)
    diags.extend(uc_diags)
    cache.save()
    if diags or config is None:
        raise SpecError(diags)
    return Project(root=root, config=config, usecases=tuple(usecases))


def load_usecases(
    root: Path,
    files: Sequence[Path],
    config: ProjectConfig | None,
    cache: SpecCache | None = None,
    usecase_dirs: frozenset[str] = frozenset(),
) -> tuple[list[UseCaseFile], list[Diagnostic]]:
    """Load use-case files; returns the good ones and the diagnostics of all.

    *usecase_dirs* are the folders the project's globs point into (no output may overlap them).
    """
    config = config or _default_config()
    loaded: list[tuple[UseCaseFile, YamlDocument]] = []
    diags: list[Diagnostic] = []
    parsed: list[tuple[Path, str, YamlDocument]] = []
    cached: set[str] = set()  # display names of files whose parse and schema checks are cached
    clean: dict[str, tuple[str, list[int] | None]] = {}  # parsed without a problem: md5, stat
    for path in files:
        display = _display(root, path)
        # the stat shortcut skips reading, not the check that the path stays in the repository
        hit = cache.unchanged(path) if cache is not None and _stays_inside(root, path) else None
        if isinstance(hit, dict):
            parsed.append((path, display, YamlDocument(display, hit, None)))
            cached.add(display)
            continue
        raw, file_diags = read_spec(path, display, root)
        if raw is None:
            diags.extend(file_diags)
            continue
        md5 = content_md5(raw.data)
        hit = cache.get(path, md5, raw.key) if cache is not None else None
        if isinstance(hit, dict):
            parsed.append((path, display, YamlDocument(display, hit, None)))
            cached.add(display)
            continue
        doc, file_diags = parse_document(raw.data, display)
        diags.extend(file_diags)
        if isinstance(doc.data, dict):
            parsed.append((path, display, doc))
            if not file_diags:
                clean[display] = (md5, raw.key)
    # custom stages' outs, across the project, count as existing data paths
    # (read before the schema check, so any shape can be here: take only lists of strings)
    produced = frozenset(
        os.path.normpath(o)
        for _p, _d, doc in parsed
        for st in _list(doc.data.get("stages"))
        if isinstance(st, dict)
        for o in _list(st.get("outs"))
        if isinstance(o, str) and o
    )
    names = frozenset(
        doc.data["metadata"]["name"]
        for _p, _d, doc in parsed
        if isinstance(doc.data.get("metadata"), dict)
        and isinstance(doc.data["metadata"].get("name"), str)
    )
    ctx = ProjectContext(
        root,
        config.allowed_estimator_modules,
        produced,
        usecase_files=frozenset(
            rel for p in files if (rel := _relative(root, p)) is not None and rel != "."
        ),
        usecase_dirs=usecase_dirs,
        usecase_names=names,
    )
    checked: list[tuple[UseCase, YamlDocument]] = []
    for path, display, doc in parsed:
        # infra keys a use case leaves out come from the project's defaults.infra (e.g. the dask
        # block of `executor: dask`), so the schema checks the use case with them filled in
        data = _with_defaults(doc.data, config)
        if display not in cached:
            schema_diags = validate_against_schema(
                YamlDocument(doc.file, data, doc.root), "UseCase"
            )
            diags.extend(schema_diags)
            if schema_diags:
                continue
            if cache is not None and display in clean:
                cache.put(path, *clean[display], doc.data)
        spec = build(UseCase, data)
        sem = check_usecase(spec, doc, ctx)
        # from the cache: parse it to locate its problems, if it has any
        if doc.root is None and sem:
            doc, _ = read_document(path, display, root)
            sem = check_usecase(spec, doc, ctx)
        checked.append((spec, doc))
        diags.extend(sem)
        if not sem:
            loaded.append((UseCaseFile(path=display, spec=spec, document=doc.data), doc))
    overlaps = overlapping_outputs(checked)  # once over all use cases: linear in the outputs
    unlocated = {d.file for d in overlaps} & {doc.file for _, doc in checked if doc.root is None}
    if unlocated:  # cached documents have no node tree: parse those involved to locate them
        paths = {display: path for path, display, _doc in parsed}
        reread = {f: read_document(paths[f], f, root)[0] for f in unlocated}
        checked = [(spec, reread.get(doc.file, doc)) for spec, doc in checked]
        loaded = [(uc, reread.get(doc.file, doc)) for uc, doc in loaded]
        overlaps = overlapping_outputs(checked)
    diags.extend(overlaps)
    diags.extend(unique_names([(uc.name, doc) for uc, doc in loaded]))
    return [uc for uc, _doc in loaded], diags


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _with_defaults(data: Mapping[str, Any], config: ProjectConfig) -> dict[str, Any]:
    """The use case with the project's defaults.infra filled in beneath its own infra."""
    infra = data.get("infra", {})
    if not isinstance(infra, dict):  # the schema reports it
        return dict(data)
    merged = dict(data)
    merged["infra"] = {**_infra_dict(config.defaults.infra), **infra}
    return merged


def _infra_dict(infra: Infra) -> dict[str, Any]:
    out: dict[str, Any] = {"executor": infra.executor, "n_jobs": infra.n_jobs}
    if infra.remote is not None:
        out["remote"] = infra.remote
    if infra.dask is not None:
        out["dask"] = {"scheduler": infra.dask.scheduler}
        if infra.dask.n_workers is not None:
            out["dask"]["n_workers"] = infra.dask.n_workers
        if infra.dask.storage is not None:
            out["dask"]["storage"] = infra.dask.storage
    return out


def _default_config() -> ProjectConfig:
    return ProjectConfig(api_version="mlopsctl/v1", kind="Project")


def _load_config(
    root: Path, cache: SpecCache | None = None, raw: SpecBytes | None = None
) -> tuple[ProjectConfig | None, list[Diagnostic]]:
    path = root / PROJECT_FILE
    if raw is None:
        raw, diags = read_spec(path, PROJECT_FILE, root)
        if raw is None:
            return None, diags
    md5 = content_md5(raw.data)
    hit = cache.get(path, md5, raw.key) if cache is not None else None
    if isinstance(hit, dict):
        doc, diags = YamlDocument(PROJECT_FILE, hit, None), list[Diagnostic]()
    else:
        doc, diags = parse_document(raw.data, PROJECT_FILE)
        if not isinstance(doc.data, dict):
            return None, diags
        schema_diags = validate_against_schema(doc, "Project")
        diags.extend(schema_diags)
        if schema_diags:
            return None, diags
        if cache is not None and not diags:
            cache.put(path, md5, raw.key, doc.data)
    config = build(ProjectConfig, doc.data)
    problems = [(i, path_problem(p)) for i, p in enumerate(config.usecases) if path_problem(p)]
    if problems and doc.root is None:  # from the cache: parse it to locate the problems
        doc, _ = parse_document(raw.data, PROJECT_FILE)
    diags.extend(doc.diagnostic(("usecases", i), problem) for i, problem in problems)
    return (None if diags else config), diags


def _usecase_files(root: Path, config: ProjectConfig) -> list[Path]:
    # every match counts, whatever it is: reading a directory, a FIFO or a dangling link says so
    # instead of skipping it without a word
    found: set[Path] = set()
    for pattern in config.usecases:
        for name in glob.glob(pattern, root_dir=root, recursive=True):
            found.add(root / name)
    return sorted(found)


def _usecase_dirs(config: ProjectConfig) -> frozenset[str]:
    """The folders the globs point into: each pattern's leading components without wildcards."""
    dirs = set()
    for pattern in config.usecases:
        parts = posixpath.normpath(pattern).split("/")
        fixed = []
        for part in parts[:-1]:
            if glob.has_magic(part):
                break
            fixed.append(part)
        if fixed and fixed != ["."]:
            dirs.add("/".join(fixed))
    return frozenset(dirs)


def _relative(root: Path | None, path: Path) -> str | None:
    """*path* relative to *root*, as written (symlinks not resolved), or None when outside."""
    if root is None:
        return None
    for base, p in ((root, path), (root.resolve(), path.parent.resolve() / path.name)):
        rel = os.path.relpath(os.path.abspath(p), os.path.abspath(base))
        if rel != ".." and not rel.startswith("../"):
            return Path(rel).as_posix()
    return None


def _stays_inside(root: Path, path: Path) -> bool:
    rel = _relative(root, path)
    try:
        return rel is not None and bool(inside_repo(root, rel))
    except UnsafePathError:
        return False


def _display(root: Path, path: Path) -> str:
    rel = _relative(root, path)
    return rel if rel is not None else str(path)


def validate_files(
    root: Path | None, paths: Sequence[Path], cwd: Path | None = None
) -> list[Diagnostic]:
    """Validate the given files (use cases or project files, by their ``kind``).

    Outside a project (*root* None), paths are shown and data files resolved from *cwd*.
    """
    base = root or cwd or Path.cwd()
    config: ProjectConfig | None = None
    diags: list[Diagnostic] = []
    usecase_dirs: frozenset[str] = frozenset()
    if root is not None:
        config, config_diags = _load_config(root)
        diags.extend(config_diags)
        usecase_dirs = _usecase_dirs(config) if config is not None else frozenset()
    usecase_paths = []
    for p in paths:
        doc, file_diags = read_document(p, _display(base, p), base)
        if isinstance(doc.data, dict) and doc.data.get("kind") == "Project":
            diags.extend(file_diags)
            diags.extend(validate_against_schema(doc, "Project"))
        else:
            usecase_paths.append(p)
    _ucs, uc_diags = load_usecases(base, usecase_paths, config, usecase_dirs=usecase_dirs)
    diags.extend(uc_diags)
    return sorted(set(diags))
