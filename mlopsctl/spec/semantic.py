"""Checks the JSON Schema cannot express: cross-references, paths, metric directions.

Runs on a schema-valid document and its typed model; every finding is a located Diagnostic.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsctl.errors import Diagnostic, did_you_mean
from mlopsctl.spec.model import (
    BUILTIN_STAGE_KINDS,
    ERROR_METRICS,
    METRICS,
    Source,
    UseCase,
    module_allowed,
)
from mlopsctl.spec.yamlio import YamlDocument, bad_interpolations

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


def check_usecase(uc: UseCase, doc: YamlDocument, ctx: ProjectContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    d = doc.diagnostic
    goal, data, model = uc.goal, uc.data, uc.model

    # --- interpolation: only ${env:NAME}, anywhere --------------------------------------
    for path, value in _strings(doc.data, ()):
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

    # --- paths: relative, inside the repository, and present -----------------------------
    produced = set(ctx.stage_outputs)
    for p, value in _declared_paths(uc):
        problem = path_problem(value)
        if problem:
            out.append(d(p, problem))
    for p, src in _data_sources(uc):
        if src.path is None or path_problem(src.path):
            continue
        if not _exists(ctx.root, src.path, produced):
            out.append(
                d(
                    (*p, "path"),
                    f"data file '{src.path}' not found",
                    hint="it is neither on disk, nor DVC-tracked (no "
                    f"{src.path}.dvc), nor an output of a stage",
                )
            )
    return out


def path_problem(value: str) -> str:
    """Why *value* is not an acceptable repository path, or '' when it is."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
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
    if norm in produced or any(norm.startswith(o.rstrip("/") + "/") for o in produced):
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
