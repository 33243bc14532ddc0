"""Load a project: mlopsctl.yaml, then every use-case file its globs name.

Every problem of every file is collected and raised once as a :class:`SpecError`, so that a
user fixes them all in one round.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlopsctl.errors import Diagnostic, ProjectNotFoundError, SpecError
from mlopsctl.spec.cache import SpecCache
from mlopsctl.spec.model import Infra, Project, ProjectConfig, UseCase, UseCaseFile, build
from mlopsctl.spec.schema import validate_against_schema
from mlopsctl.spec.semantic import ProjectContext, check_usecase, path_problem, unique_names
from mlopsctl.spec.yamlio import YamlDocument, load_yaml

PROJECT_FILE = "mlopsctl.yaml"


def find_project_root(start: Path) -> Path:
    """The nearest directory at or above *start* holding mlopsctl.yaml."""
    start = start.resolve()
    for d in (start, *start.parents):
        if (d / PROJECT_FILE).is_file():
            return d
    raise ProjectNotFoundError(
        f"no {PROJECT_FILE} in {start} or any parent directory (run `mlopsctl init` first)"
    )


def read_document(path: Path, display: str) -> tuple[YamlDocument, list[Diagnostic]]:
    """Read and parse one YAML file; a top level that is not a mapping is a diagnostic."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return YamlDocument(display, None, None), [Diagnostic(display, 1, 1, "", "file not found")]
    except UnicodeDecodeError as exc:
        return YamlDocument(display, None, None), [
            Diagnostic(display, 1, 1, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        ]
    except OSError as exc:
        return YamlDocument(display, None, None), [
            Diagnostic(display, 1, 1, "", f"cannot read: {exc.strerror}")
        ]
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


def load_project(root: Path) -> Project:
    """Load and check the whole project at *root*; raise SpecError with every problem."""
    cache = SpecCache(root, PROJECT_FILE)
    config, config_diags = _load_config(root, cache)
    diags = list(config_diags)
    files = _usecase_files(root, config) if config is not None else []
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
    usecases, uc_diags = load_usecases(root, files, config, cache)
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
) -> tuple[list[UseCaseFile], list[Diagnostic]]:
    """Load use-case files; returns the good ones and the diagnostics of all."""
    config = config or _default_config()
    loaded: list[tuple[UseCaseFile, YamlDocument]] = []
    diags: list[Diagnostic] = []
    parsed: list[tuple[Path, str, YamlDocument]] = []
    cached: set[str] = set()  # display names of files whose schema check is cached
    for path in files:
        display = _display(root, path)
        hit = cache.get(path) if cache is not None else None
        if isinstance(hit, dict):
            parsed.append((path, display, YamlDocument(display, hit, None)))
            cached.add(display)
            continue
        doc, file_diags = read_document(path, display)
        diags.extend(file_diags)
        if isinstance(doc.data, dict):
            parsed.append((path, display, doc))
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
    ctx = ProjectContext(root, config.allowed_estimator_modules, produced)
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
            if cache is not None:
                cache.put(path, doc.data)
        spec = build(UseCase, data)
        sem = check_usecase(spec, doc, ctx)
        if sem and doc.root is None:  # from the cache: parse it to locate the problems
            doc, _ = read_document(path, display)
            sem = check_usecase(spec, doc, ctx)
        diags.extend(sem)
        if not sem:
            loaded.append((UseCaseFile(path=display, spec=spec, document=doc.data), doc))
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
    return out


def _default_config() -> ProjectConfig:
    return ProjectConfig(api_version="mlopsctl/v1", kind="Project")


def _load_config(
    root: Path, cache: SpecCache | None = None
) -> tuple[ProjectConfig | None, list[Diagnostic]]:
    path = root / PROJECT_FILE
    hit = cache.get(path) if cache is not None else None
    if isinstance(hit, dict):
        doc, diags = YamlDocument(PROJECT_FILE, hit, None), list[Diagnostic]()
    else:
        doc, diags = read_document(path, PROJECT_FILE)
        if not isinstance(doc.data, dict):
            return None, diags
        schema_diags = validate_against_schema(doc, "Project")
        diags.extend(schema_diags)
        if schema_diags:
            return None, diags
        if cache is not None:
            cache.put(path, doc.data)
    config = build(ProjectConfig, doc.data)
    problems = [(i, path_problem(p)) for i, p in enumerate(config.usecases) if path_problem(p)]
    if problems and doc.root is None:  # from the cache: parse it to locate the problems
        doc, _ = read_document(path, PROJECT_FILE)
    diags.extend(doc.diagnostic(("usecases", i), problem) for i, problem in problems)
    return (None if diags else config), diags


def _usecase_files(root: Path, config: ProjectConfig) -> list[Path]:
    found: set[Path] = set()
    for pattern in config.usecases:
        for name in glob.glob(pattern, root_dir=root, recursive=True):
            p = root / name
            if p.is_file():
                found.add(p)
    return sorted(found)


def _display(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def validate_files(
    root: Path | None, paths: Sequence[Path], cwd: Path | None = None
) -> list[Diagnostic]:
    """Validate the given files (use cases or project files, by their ``kind``).

    Outside a project (*root* None), paths are shown and data files resolved from *cwd*.
    """
    base = root or cwd or Path.cwd()
    config: ProjectConfig | None = None
    diags: list[Diagnostic] = []
    if root is not None:
        config, config_diags = _load_config(root)
        diags.extend(config_diags)
    usecase_paths = []
    for p in paths:
        doc, file_diags = read_document(p, _display(base, p))
        if isinstance(doc.data, dict) and doc.data.get("kind") == "Project":
            diags.extend(file_diags)
            diags.extend(validate_against_schema(doc, "Project"))
        else:
            usecase_paths.append(p)
    _ucs, uc_diags = load_usecases(base, usecase_paths, config)
    diags.extend(uc_diags)
    return sorted(set(diags))
