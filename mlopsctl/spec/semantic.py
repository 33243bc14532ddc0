"""Checks the JSON Schema cannot express: cross-references, paths, metric directions.

Runs on a schema-valid document and its typed model; every finding is a located Diagnostic.
"""

from __future__ import annotations

import functools
import json
import os
import posixpath
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsctl.errors import Diagnostic, did_you_mean
from mlopsctl.spec.document import YamlDocument, bad_interpolations, format_path
from mlopsctl.spec.model import (
    BUILTIN_STAGE_KINDS,
    ERROR_METRICS,
    METRICS,
    Source,
    UseCase,
    module_allowed,
)
from mlopsctl.spec.paths import UnsafePathError, file_kind, inside_repo, resolve_inside

# scikit-learn's scorer names (sklearn.metrics.get_scorer_names()), kept here so that validating
# a spec never imports scikit-learn; a test checks it against the installed one.
SCORERS = frozenset(
    [
        "accuracy",
        "adjusted_mutual_info_score",
        "adjusted_rand_score",
        "average_precision",
        "balanced_accuracy",
        "completeness_score",
        "d2_absolute_error_score",
        "d2_brier_score",
        "d2_log_loss_score",
        "explained_variance",
        "f1",
        "f1_macro",
        "f1_micro",
        "f1_samples",
        "f1_weighted",
        "fowlkes_mallows_score",
        "homogeneity_score",
        "jaccard",
        "jaccard_macro",
        "jaccard_micro",
        "jaccard_samples",
        "jaccard_weighted",
        "matthews_corrcoef",
        "mutual_info_score",
        "neg_brier_score",
        "neg_log_loss",
        "neg_max_error",
        "neg_mean_absolute_error",
        "neg_mean_absolute_percentage_error",
        "neg_mean_gamma_deviance",
        "neg_mean_poisson_deviance",
        "neg_mean_squared_error",
        "neg_mean_squared_log_error",
        "neg_median_absolute_error",
        "neg_negative_likelihood_ratio",
        "neg_root_mean_squared_error",
        "neg_root_mean_squared_log_error",
        "normalized_mutual_info_score",
        "positive_likelihood_ratio",
        "precision",
        "precision_macro",
        "precision_micro",
        "precision_samples",
        "precision_weighted",
        "r2",
        "rand_score",
        "recall",
        "recall_macro",
        "recall_micro",
        "recall_samples",
        "recall_weighted",
        "roc_auc",
        "roc_auc_ovo",
        "roc_auc_ovo_weighted",
        "roc_auc_ovr",
        "roc_auc_ovr_weighted",
        "top_k_accuracy",
        "v_measure_score",
    ]
)


@dataclass(frozen=True)
class ProjectContext:
    """What semantic checks of one use case need to know about the project around it."""

    root: Path
    allowed_estimator_modules: tuple[str, ...] = ("sklearn",)
    stage_outputs: frozenset[str] = field(default_factory=frozenset)  # outs of custom stages
    usecase_files: frozenset[str] = field(default_factory=frozenset)  # normalised, root-relative
    usecase_dirs: frozenset[str] = field(default_factory=frozenset)  # the folders globs point into
    usecase_names: frozenset[str] = field(default_factory=frozenset)  # every use case's name


def check_usecase(uc: UseCase, doc: YamlDocument, ctx: ProjectContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    d = doc.diagnostic
    goal, data, model = uc.goal, uc.data, uc.model

    # --- interpolation: only ${env:NAME}, anywhere --------------------------------------
    for path, value in _interpolated_strings(doc.data):
        for bad in bad_interpolations(value):
            out.append(d(path, f"bad interpolation '{bad}'", hint="the only form is ${env:NAME}"))

    # --- goal ------------------------------------------------------------------------------
    allowed_metrics = METRICS[goal.problem]
    for name, bound in goal.metrics.items():
        out.extend(_direction(doc, ("goal", "metrics", name), name, bound.min, bound.max))
    if goal.primary_metric is not None and goal.primary_metric not in goal.metrics:
        out.append(
            d(
                ("goal", "primary_metric"),
                f"primary metric '{goal.primary_metric}' is not one of goal.metrics",
                hint="expected one of: " + ", ".join(goal.metrics),
            )
        )
    del allowed_metrics

    # --- data: features, join, checks, split ---------------------------------------------
    f = data.features
    if f is not None:
        groups = {"numeric": f.numeric, "categorical": f.categorical, "drop": f.drop}
        for gname, cols in groups.items():
            if goal.target in cols:
                i = cols.index(goal.target)
                msg = (
                    f"the target '{goal.target}' cannot be dropped"
                    if gname == "drop"
                    else f"the target '{goal.target}' cannot also be a feature"
                )
                out.append(d(("data", "features", gname, i), msg))
        seen: dict[str, str] = {}
        for gname, cols in groups.items():
            for i, col in enumerate(cols):
                if col in seen and seen[col] != gname:
                    out.append(
                        d(
                            ("data", "features", gname, i),
                            f"column '{col}' is listed in both {seen[col]} and {gname}",
                        )
                    )
                seen.setdefault(col, gname)
    sources = list(data.sources)
    joined = {sources[0]} if sources else set()
    for i, j in enumerate(data.join):
        for side in ("left", "right"):
            name = getattr(j, side)
            if name not in data.sources:
                out.append(
                    d(
                        ("data", "join", i, side),
                        f"unknown source '{name}'",
                        hint=did_you_mean(name, sources) or "sources: " + ", ".join(sources),
                    )
                )
        joined |= {j.left, j.right}
    if len(sources) > 1:
        missing = [s for s in sources if s not in joined]
        if not data.join:
            out.append(
                d(
                    ("data", "sources"),
                    f"{len(sources)} sources but no data.join to combine them",
                    hint="add a join entry per extra source",
                )
            )
        elif missing:
            out.append(
                d(("data", "join"), "sources not combined by any join: " + ", ".join(missing))
            )
    for col, rng in data.checks.ranges.items():
        if rng.min is not None and rng.max is not None and rng.min > rng.max:
            out.append(
                d(
                    ("data", "checks", "ranges", col),
                    f"min {rng.min:g} is greater than max {rng.max:g}",
                )
            )
    if data.split.stratify and goal.problem == "regression":
        out.append(
            d(
                ("data", "split", "stratify"),
                "stratify needs a classification problem, not regression",
            )
        )

    # --- model -----------------------------------------------------------------------------
    module = model.estimator.rsplit(".", 1)[0]
    if not module_allowed(module, ctx.allowed_estimator_modules):
        out.append(
            d(
                ("model", "estimator"),
                f"estimator module '{module}' is not allowed",
                hint="allowed_estimator_modules: " + ", ".join(ctx.allowed_estimator_modules),
            )
        )
    if model.tuning is not None:
        t = model.tuning
        if t.scoring is not None and t.scoring not in SCORERS:
            out.append(
                d(
                    ("model", "tuning", "scoring"),
                    f"unknown scikit-learn scorer '{t.scoring}'",
                    hint=did_you_mean(t.scoring, SCORERS),
                )
            )

    # --- monitoring ------------------------------------------------------------------------
    if uc.monitoring is not None:
        for name, bound in uc.monitoring.performance.items():
            out.extend(
                _direction(doc, ("monitoring", "performance", name), name, bound.min, bound.max)
            )

    # --- custom stages ---------------------------------------------------------------------
    names: dict[str, int] = {}
    for i, st in enumerate(uc.stages):
        if st.name in BUILTIN_STAGE_KINDS:
            out.append(d(("stages", i, "name"), f"'{st.name}' is the name of a built-in stage"))
        if st.name in names:
            out.append(
                d(
                    ("stages", i, "name"),
                    f"duplicate stage name '{st.name}' (first at stages[{names[st.name]}])",
                )
            )
        names.setdefault(st.name, i)
    valid_before = [*BUILTIN_STAGE_KINDS, *names]
    for i, st in enumerate(uc.stages):
        if st.before is not None and (st.before not in valid_before or st.before == st.name):
            out.append(
                d(
                    ("stages", i, "before"),
                    f"unknown stage '{st.before}'",
                    hint=did_you_mean(st.before, valid_before)
                    or "expected one of: " + ", ".join(valid_before),
                )
            )

    # --- paths: relative, inside the repository (symlinks resolved), and present ----------
    produced = set(ctx.stage_outputs)
    unsafe: set[tuple[str | int, ...]] = set()
    for p, value in _declared_paths(uc):
        problem = path_problem(value) or _outside_problem(ctx.root, value, "path")
        if problem:
            out.append(d(p, problem))
            unsafe.add(p)
    for folder in (f"artifacts/{uc.name}", f"reports/{uc.name}"):
        problem = _outside_problem(ctx.root, folder, "output folder")
        if problem:
            out.append(d(("metadata", "name"), problem))
    for p, src in _data_sources(uc):
        if src.path is None or (*p, "path") in unsafe:
            continue
        kind = _kind(ctx.root, src.path)
        if kind not in ("", "a regular file"):
            out.append(d((*p, "path"), f"data file '{src.path}' is {kind}, not a regular file"))
        elif not kind and not _exists(ctx.root, src.path, produced):
            out.append(
                d(
                    (*p, "path"),
                    f"data file '{src.path}' not found",
                    hint="it is neither on disk, nor DVC-tracked (no "
                    f"{src.path}.dvc), nor an output of a stage",
                )
            )
    for i, st in enumerate(uc.stages):
        for k, dep in enumerate(st.deps):
            if ("stages", i, "deps", k) in unsafe or _is_produced(dep, produced):
                continue
            kind = _kind(ctx.root, dep)
            if kind not in ("", "a regular file", "a directory"):
                out.append(
                    d(("stages", i, "deps", k), f"dependency '{dep}' is {kind}, not a regular file")
                )
    for p, value in _declared_outputs(uc):
        problem = "" if p in unsafe else output_problem(value, uc, ctx)
        if problem:
            out.append(d(p, problem))
    return out


#: Files and folders that belong to git, DVC and mlopsctl: an output there would delete them.
RESERVED_DIRS = (".git", ".dvc", ".mlopsctl")
RESERVED_FILES = ("dvc.yaml", "dvc.lock", "mlopsctl.yaml", ".gitignore", ".dvcignore")
#: What the built-in stages of use case NAME write (mirrors mlopsctl/compile/layout.py, which
#: this layer cannot import; a test proves every compiled built-in output is covered). The whole
#: reports folder is theirs; of artifacts, these entries (the deploy bundle is a folder).
BUILTIN_OUTPUTS = (
    "artifacts/{name}/snapshot.parquet",
    "artifacts/{name}/train.parquet",
    "artifacts/{name}/test.parquet",
    "artifacts/{name}/model.skops",
    "artifacts/{name}/signature.json",
    "artifacts/{name}/reference_profile.json",
    "artifacts/{name}/deploy",
    "reports/{name}",
)


def output_problem(value: str, uc: UseCase, ctx: ProjectContext) -> str:
    """Why *value* cannot be an output of a stage of *uc* (deleting or replacing it would harm
    the repository), or '' when it can. Overlaps between outputs are checked project-wide by
    :func:`overlapping_outputs`."""
    norm = posixpath.normpath(value.replace("\\", "/"))
    if norm in (".", ""):
        return f"output '{value}' is the whole repository"
    first = norm.split("/", 1)[0]
    if first.casefold() in RESERVED_DIRS:
        return f"output '{value}' is inside {first}/, which belongs to {_owner(first)}"
    if norm in RESERVED_FILES:
        return f"output '{value}' is {norm}, which mlopsctl and DVC manage"
    if norm.endswith(".dvc"):
        return f"output '{value}' is a DVC tracking file"
    for f in _sorted(ctx.usecase_files):
        if _overlap(norm, f):
            return f"output '{value}' overlaps the use-case file {f}"
    for folder in _sorted(ctx.usecase_dirs):
        if _overlap(norm, folder):
            return f"output '{value}' overlaps the use-case folder {folder}/"
    for name, builtin in _builtin_outputs(ctx.usecase_names | {uc.name}):
        if _overlap(norm, builtin):
            return f"output '{value}' overlaps {builtin}, an output of use case {name}"
    for p, src in _data_sources(uc):
        if src.path is not None and _overlap(norm, posixpath.normpath(src.path)):
            tracked = _tracked_by(ctx.root, posixpath.normpath(src.path))
            if tracked:
                return (
                    f"output '{value}' overlaps the data source {src.path} "
                    f"({format_path(p)}), which {tracked} tracks"
                )
    return ""


@functools.lru_cache(maxsize=8)
def _builtin_outputs(names: frozenset[str]) -> tuple[tuple[str, str], ...]:
    """(use case, path) of every built-in output of *names*: checked against each custom
    output, so built once per project rather than once per output."""
    return tuple((n, pattern.format(name=n)) for n in sorted(names) for pattern in BUILTIN_OUTPUTS)


def overlapping_outputs(entries: Sequence[tuple[UseCase, YamlDocument]]) -> list[Diagnostic]:
    """Outputs of stages (of any use case) that are the same path or one inside the other.

    The later of two is reported, pointing at the earlier: apply would remove one stage's
    output while running the other.
    """
    seen: list[tuple[str, str]] = []  # (as written, where declared), in declaration order
    # Linear, not pairwise (1,000 custom stages made this most of a plan's time): the first
    # earlier output that overlaps is the earliest of the same path, of its folders and of the
    # paths under it; each is found by index, keyed by the normalised path.
    first_at: dict[str, int] = {}  # normalised path -> its first declaration
    first_under: dict[str, int] = {}  # folder -> the first declaration strictly inside it
    out = []
    for uc, doc in entries:
        for p, value in _declared_outputs(uc):
            if path_problem(value):
                continue
            norm = posixpath.normpath(value.replace("\\", "/"))
            parts = norm.split("/")
            folders = ["/".join(parts[:i]) for i in range(1, len(parts))]
            hits = [first_at.get(f) for f in (norm, *folders)] + [first_under.get(norm)]
            earliest = min((i for i in hits if i is not None), default=None)
            if earliest is not None:
                clash = seen[earliest]
                what = "is also" if posixpath.normpath(clash[0]) == norm else "overlaps"
                message = f"output '{value}' {what} the output '{clash[0]}' of {clash[1]}"
                out.append(doc.diagnostic(p, message))
            index = len(seen)
            seen.append((value, f"{doc.file}: {format_path(p)}"))
            first_at.setdefault(norm, index)
            for folder in folders:
                first_under.setdefault(folder, index)
    return out


def _overlap(a: str, b: str) -> bool:
    """Whether normalised paths *a* and *b* are the same, or one is inside the other."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _owner(first: str) -> str:
    return {".git": "git", ".dvc": "DVC"}.get(first.casefold(), "mlopsctl")


def _tracked_by(root: Path, norm: str) -> str:
    """The .dvc file that tracks *norm* (or a folder holding it) on its own, or ''."""
    parts = norm.split("/")
    for i in range(len(parts), 0, -1):
        candidate = "/".join(parts[:i]) + ".dvc"
        try:
            if (root / candidate).exists():
                return candidate
        except OSError:
            continue
    return ""


def _outside_problem(root: Path, value: str, what: str) -> str:
    try:
        resolve_inside(root, posixpath.normpath(value))
    except UnsafePathError as exc:
        return f"{what} '{value}' {exc.problem}"
    return ""


def _kind(root: Path, rel: str) -> str:
    """What *rel* is on disk once resolved ('' when it does not exist); never opens it."""
    try:
        mode = os.lstat(inside_repo(root, posixpath.normpath(rel))).st_mode
    except (OSError, UnsafePathError):
        return ""
    return "a regular file" if stat.S_ISREG(mode) else file_kind(mode)


def _is_produced(rel: str, produced: set[str]) -> bool:
    norm = posixpath.normpath(rel)
    return norm in produced or any(norm.startswith(o.rstrip("/") + "/") for o in produced)


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def path_problem(value: str) -> str:
    """Why *value* is not an acceptable repository path, or '' when it is."""
    if _CONTROL.search(value):
        return f"path {value!r} contains a control character"
    if value.startswith(("/", "\\")) or (len(value) > 1 and value[1] == ":"):
        return f"path '{value}' must be relative to the repository"
    norm = posixpath.normpath(value.replace("\\", "/"))
    if norm == ".." or norm.startswith("../"):
        return f"path '{value}' leaves the repository"
    if "://" in value:
        return f"path '{value}' must be a file in the repository, not a URL"
    return ""


def _exists(root: Path, rel: str, produced: set[str]) -> bool:
    norm = posixpath.normpath(rel)
    if _is_produced(norm, produced):
        return True
    try:
        return (root / norm).exists() or (root / f"{norm}.dvc").exists()
    except OSError:  # e.g. a name longer than the file system allows: it cannot be there
        return False


def _data_sources(uc: UseCase) -> Iterable[tuple[tuple[str | int, ...], Source]]:
    for name, src in uc.data.sources.items():
        yield ("data", "sources", name), src
    if uc.deploy.batch is not None:
        yield ("deploy", "batch", "input"), uc.deploy.batch.input
    if uc.monitoring is not None:
        yield ("monitoring", "current"), uc.monitoring.current


def _declared_paths(uc: UseCase) -> Iterable[tuple[tuple[str | int, ...], str]]:
    for p, src in _data_sources(uc):
        if src.path is not None:
            yield (*p, "path"), src.path
    if uc.deploy.batch is not None:
        yield ("deploy", "batch", "output"), uc.deploy.batch.output
    for i, st in enumerate(uc.stages):
        for group in ("deps", "outs", "metrics"):
            for j, value in enumerate(getattr(st, group)):
                yield ("stages", i, group, j), value


def _declared_outputs(uc: UseCase) -> Iterable[tuple[tuple[str | int, ...], str]]:
    if uc.deploy.batch is not None:
        yield ("deploy", "batch", "output"), uc.deploy.batch.output
    for i, st in enumerate(uc.stages):
        for group in ("outs", "metrics"):
            for j, value in enumerate(getattr(st, group)):
                yield ("stages", i, group, j), value


def _direction(
    doc: YamlDocument, path: tuple[str, ...], name: str, lo: float | None, hi: float | None
) -> list[Diagnostic]:
    if lo is not None and hi is not None:  # a range: fine for errors and scores alike
        if lo > hi:
            return [doc.diagnostic(path, f"min {lo:g} is greater than max {hi:g}: never holds")]
        return []
    if name in ERROR_METRICS and lo is not None:
        return [
            doc.diagnostic(
                (*path, "min"),
                f"{name} is an error (lower is better): bound it with max, not min",
                key=True,
            )
        ]
    if name not in ERROR_METRICS and hi is not None and lo is None:
        return [
            doc.diagnostic(
                (*path, "max"),
                f"{name} is a score (higher is better): bound it with min, not max",
                key=True,
            )
        ]
    return []


@functools.lru_cache(maxsize=16)
def _sorted(names: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(names))


def _interpolated_strings(data: Any) -> Iterable[tuple[tuple[str | int, ...], str]]:
    """The strings of *data* that contain ``${``, with their key paths.

    A document without any is the common case: one C-speed serialisation tells, instead of a
    walk over every value (~25,000 of them in a 1,000-stage use case).
    """
    try:
        if "${" not in json.dumps(data, ensure_ascii=False):
            return ()
    except (TypeError, ValueError):  # a value JSON cannot hold (binary, non-string keys...)
        pass
    return ((p, v) for p, v in _strings(data, ()) if "${" in v)


def _strings(
    value: Any, path: tuple[str | int, ...]
) -> Iterable[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))


def unique_names(entries: Sequence[tuple[str, YamlDocument]]) -> list[Diagnostic]:
    """Use-case names must be unique in the project."""
    out = []
    first: dict[str, str] = {}
    for name, doc in entries:
        if name in first:
            out.append(
                doc.diagnostic(
                    ("metadata", "name"), f"use case '{name}' is already defined in {first[name]}"
                )
            )
        first.setdefault(name, doc.file)
    return out
