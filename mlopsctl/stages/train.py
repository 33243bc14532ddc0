"""train: fit the preprocessing + estimator pipeline on the training set (optionally tuned).

Writes the model (a canonical skops file) and ``training.json``: the features used (declared or
inferred), the effective params, the tuning results and the library versions.
"""

from __future__ import annotations

import contextlib
import platform
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from mlopsctl.errors import StageFailedError
from mlopsctl.spec.model import Model, UseCase
from mlopsctl.stages.base import StageContext, atomic_write_bytes, write_json
from mlopsctl.stages.frames import FeatureSet, jsonable, read_parquet, select_features
from mlopsctl.stages.modelio import import_estimator, save_model

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

#: the scikit-learn scorer that tunes for each goal metric (errors are negated by sklearn)
SCORERS = {
    "roc_auc": "roc_auc",
    "f1": "f1",
    "accuracy": "accuracy",
    "precision": "precision",
    "recall": "recall",
    "log_loss": "neg_log_loss",
    "f1_macro": "f1_macro",
    "f1_weighted": "f1_weighted",
    "r2": "r2",
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "mape": "neg_mean_absolute_percentage_error",
}


def run(ctx: StageContext) -> dict[str, Any]:
    usecase = ctx.usecase
    frame = read_parquet(ctx, ctx.paths.train_set, "the training set")
    features = select_features(usecase, frame)
    target = usecase.goal.target
    n_current = 0
    if usecase.monitoring is not None and usecase.monitoring.retrain_with_current:
        frame, n_current = with_current_batch(ctx, frame, [*features.columns, target])
    x, y = frame[features.columns], frame[target]
    if y.isna().any():
        raise StageFailedError(
            f"the target '{target}' has {int(y.isna().sum())} missing values in the training set"
        )

    estimator_cls = import_estimator(usecase.model.estimator, ctx.allowed_estimator_modules)
    estimator = make_estimator(estimator_cls, usecase)
    # ctx.n_jobs is the stage's thread cap (infra.n_jobs, within the stage's share of the cores:
    # execute/task.py). It is how this machine trains, not part of the model: set for the fit,
    # then reset, so that the model file and training.json stay the same. A search runs its
    # candidates in parallel instead, each on one thread: never n_jobs squared.
    params = estimator.get_params(deep=False)
    own_n_jobs = (
        "n_jobs" in params
        and "n_jobs" not in usecase.model.params
        and ctx.n_jobs != 1
        and usecase.model.tuning is None
    )
    if own_n_jobs:
        estimator.set_params(n_jobs=ctx.n_jobs)
    pipeline = make_pipeline(usecase.model, features, estimator)
    fitted, tuning = fit(ctx, pipeline, x, y)

    final = fitted.named_steps["model"]
    if own_n_jobs:
        final.set_params(n_jobs=params["n_jobs"])
    record: dict[str, Any] = {
        "estimator": usecase.model.estimator,
        "params": {k: _param_value(v) for k, v in sorted(final.get_params(deep=False).items())},
        "preprocessing": {
            "numeric": usecase.model.preprocessing.numeric,
            "categorical": usecase.model.preprocessing.categorical,
            "impute": usecase.model.preprocessing.impute,
        },
        "features": features.to_json(),
        "target": target,
        "problem": usecase.goal.problem,
        "n_train": len(frame),
        "tuning": tuning,
        "versions": library_versions(),
    }
    if n_current:
        record["n_current"] = n_current  # rows of the current batch among n_train
    if usecase.goal.problem != "regression":
        record["classes"] = jsonable(list(getattr(fitted, "classes_", [])))
    handled = handled_breach(ctx)
    if handled is not None:
        record["monitoring_breach"] = handled
    save_model(fitted, ctx.output(ctx.paths.model))
    write_json(ctx.output(ctx.paths.signature), signature(usecase, features, x, fitted))
    atomic_write_bytes(
        ctx.output(ctx.paths.reference_profile),
        reference_profile(usecase, features, frame, fitted).encode("utf-8"),
    )
    write_json(ctx.output(ctx.paths.training), record)
    summary: dict[str, Any] = {"n_train": len(frame), "n_features": len(features.columns)}
    if tuning is not None:
        summary["best_params"] = tuning["best_params"]
    return summary


def with_current_batch(ctx: StageContext, frame: Any, columns: list[str]) -> tuple[Any, int]:
    """The training set plus the current monitoring batch (``retrain_with_current: true``):
    *columns* of both, the batch's rows appended; and the number of batch rows."""
    import pandas as pd

    from mlopsctl.stages.ingest import read_source

    mon = ctx.usecase.monitoring
    assert mon is not None
    current = read_source(ctx, "monitoring.current", mon.current)
    missing = [c for c in columns if c not in current.columns]
    if missing:
        raise StageFailedError(
            "monitoring.retrain_with_current: the current batch lacks "
            + ", ".join(repr(c) for c in missing)
            + " (it needs every feature and the target to be trained on)"
        )
    combined = pd.concat([frame[columns], current[columns]], ignore_index=True)
    return combined, len(current)


# --- the estimator ----------------------------------------------------------------------------


def make_estimator(cls: type, usecase: UseCase) -> Any:
    """*cls* with model.params, random_state filled in (like the split) when left out."""
    params = dict(usecase.model.params)
    path = usecase.model.estimator
    try:
        estimator = cls(**params)
    except (TypeError, ValueError) as exc:
        raise StageFailedError(f"model.params: {path} rejects its params: {exc}") from exc
    accepted = estimator.get_params(deep=False)
    unknown = [p for p in params if p not in accepted]
    if unknown:  # estimators taking **kwargs accept anything at __init__
        raise StageFailedError(
            f"model.params: {path} has no param {', '.join(repr(p) for p in unknown)}"
        )
    # an unseeded estimator would make a different model on every run: seed it like the split
    if "random_state" in accepted and "random_state" not in params:
        estimator.set_params(random_state=usecase.data.split.seed)
    return estimator


def make_pipeline(model: Model, features: FeatureSet, estimator: Any) -> Pipeline:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (
        MinMaxScaler,
        OneHotEncoder,
        OrdinalEncoder,
        RobustScaler,
        StandardScaler,
    )

    prep = model.preprocessing
    transformers: list[tuple[str, Any, list[str]]] = []
    if features.numeric:
        steps: list[tuple[str, Any]] = []
        if prep.impute != "none":
            steps.append(("impute", SimpleImputer(strategy=prep.impute)))
        scalers = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}
        if prep.numeric in scalers:
            steps.append(("scale", scalers[prep.numeric]()))
        elif prep.numeric != "none":
            raise StageFailedError(f"model.preprocessing.numeric: unknown '{prep.numeric}'")
        numeric: Any = Pipeline(steps) if steps else "passthrough"
        transformers.append(("numeric", numeric, list(features.numeric)))
    if features.categorical:
        steps = []
        if prep.impute != "none":
            steps.append(("impute", SimpleImputer(strategy="most_frequent")))
        if prep.categorical == "onehot":
            steps.append(("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)))
        elif prep.categorical == "ordinal":
            encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
            steps.append(("encode", encoder))
        else:
            raise StageFailedError(f"model.preprocessing.categorical: unknown '{prep.categorical}'")
        transformers.append(("categorical", Pipeline(steps), list(features.categorical)))
    preprocess = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0)
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


# --- fitting ----------------------------------------------------------------------------------


def fit(ctx: StageContext, pipeline: Pipeline, x: Any, y: Any) -> tuple[Any, dict[str, Any] | None]:
    """Fit *pipeline* (tuned if model.tuning is set); the fitted pipeline and the tuning record."""
    usecase = ctx.usecase
    path = usecase.model.estimator
    tuning = usecase.model.tuning
    if tuning is None:
        try:
            with _quiet_n_jobs():
                return pipeline.fit(x, y), None
        except (ValueError, TypeError) as exc:
            raise StageFailedError(f"training {path} failed: {exc}") from exc

    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    estimator = pipeline.named_steps["model"]
    accepted = estimator.get_params(deep=True)
    unknown = [p for p in tuning.params if p not in accepted]
    if unknown:
        raise StageFailedError(
            f"model.tuning.params: {path} has no param {', '.join(repr(p) for p in unknown)}"
        )
    grid = {f"model__{name}": list(values) for name, values in tuning.params.items()}
    scoring = tuning.scoring or SCORERS.get(usecase.goal.primary)
    if scoring is None:
        raise StageFailedError(
            f"model.tuning.scoring: no default scorer for '{usecase.goal.primary}'; set one"
        )
    # on a dask worker the CV fits fan out over the cluster (joblib's dask backend, through the
    # worker's client; joblib secedes the waiting task so it holds no worker thread): the
    # search then takes every worker thread (-1), each fit single-threaded as the nanny sets
    # dask workers up. Elsewhere a local pool of ctx.n_jobs workers, one thread each (the
    # stage's cap, never n_jobs squared).
    on_dask = _on_dask_worker()
    n_jobs = -1 if on_dask else ctx.n_jobs
    search: Any
    if tuning.method == "grid":
        search = GridSearchCV(
            pipeline, grid, scoring=scoring, cv=tuning.cv, n_jobs=n_jobs, error_score="raise"
        )
    elif tuning.method == "random":
        search = RandomizedSearchCV(
            pipeline,
            grid,
            n_iter=tuning.n_iter,
            scoring=scoring,
            cv=tuning.cv,
            n_jobs=n_jobs,
            random_state=usecase.data.split.seed,
            error_score="raise",
        )
    else:
        raise StageFailedError(f"model.tuning.method: unknown method '{tuning.method}'")
    from joblib import parallel_config

    from mlopsctl.report.progress import Progress

    backend = (
        parallel_config(backend="dask")
        if on_dask
        else parallel_config(backend="loky", inner_max_num_threads=1)
    )
    # every candidate on every fold, then the refit of the best on the whole training set
    total = _n_candidates(search, grid) * tuning.cv + 1
    progress = Progress(ctx.root, f"{usecase.name}/train", total, "tuning", "fits")
    try:
        with _quiet_n_jobs(), backend, _counting_fits(progress.update):
            search.fit(x, y)
    except (ValueError, TypeError) as exc:
        raise StageFailedError(f"tuning {path} ({tuning.method} search) failed: {exc}") from exc
    finally:
        progress.close()
    best_params = {k.removeprefix("model__"): jsonable(v) for k, v in search.best_params_.items()}
    record = {
        "method": tuning.method,
        "best_params": dict(sorted(best_params.items())),
        "best_score": float(search.best_score_),
        "scoring": scoring,
        "cv": tuning.cv,
        "candidates": len(search.cv_results_["params"]),
    }
    return search.best_estimator_, record


def _on_dask_worker() -> bool:
    """True inside a task of a dask worker (the dask executor runs this stage there)."""
    import sys

    if "distributed" not in sys.modules:  # never imported: no dask worker in this process
        return False
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


def _n_candidates(search: Any, grid: dict[str, list[Any]]) -> int:
    """How many parameter settings *search* tries (a grid's size, or n_iter at most)."""
    from sklearn.model_selection import ParameterGrid

    size = len(ParameterGrid(grid))
    n_iter = getattr(search, "n_iter", None)
    return min(size, int(n_iter)) if n_iter is not None else size


@contextlib.contextmanager
def _counting_fits(report: Callable[[int], None]) -> Iterator[None]:
    """Call *report* with the number of fits done each time joblib completes a batch.

    joblib's ``Parallel.print_progress`` runs in this process after every completed batch,
    whichever backend ran it (sequential, loky or dask), with ``n_completed_tasks`` counted;
    it is the one hook the search offers. Patched for the block, restored after.
    """
    from joblib import Parallel

    original = Parallel.print_progress

    def print_progress(self: Any) -> None:
        original(self)
        report(int(self.n_completed_tasks))

    Parallel.print_progress = print_progress
    try:
        yield
    finally:
        Parallel.print_progress = original


@contextlib.contextmanager
def _quiet_n_jobs() -> Iterator[None]:
    """Silence sklearn's "'n_jobs' has no effect" FutureWarning: we set n_jobs, not the user."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*'n_jobs' has no effect", category=FutureWarning
        )
        yield


# --- records ----------------------------------------------------------------------------------

#: how the fitted encoder treats a category it did not see in training (sklearn's handle_unknown)
_UNKNOWN = {
    "ignore": "ignore",  # one-hot: all zeros
    "infrequent_if_exist": "ignore",
    "use_encoded_value": "encode",  # ordinal: a reserved code
    "error": "error",
}


def signature(usecase: UseCase, features: FeatureSet, x: Any, fitted: Any) -> dict[str, Any]:
    """The model's input signature: what batch scoring and `mlopsctl serve` check inputs against.

    Per feature: name, kind, dtype, whether missing values are accepted, how many were seen,
    the numeric range or the categories seen in training, and what the encoder does with a
    category it never saw.
    """
    import pandas as pd

    imputes = usecase.model.preprocessing.impute != "none"
    unknown = _unknown_policy(fitted)
    columns: list[dict[str, Any]] = []
    for name in features.columns:
        col = x[name]
        missing = int(col.isna().sum())
        entry: dict[str, Any] = {
            "name": name,
            "dtype": str(col.dtype),
            "missing_seen": missing,
            "nullable": imputes or missing > 0,
        }
        if name in features.numeric:
            values = pd.to_numeric(col, errors="coerce").dropna()
            entry["kind"] = "numeric"
            entry["integer"] = bool(pd.api.types.is_integer_dtype(col.dtype))
            entry["min"] = jsonable(values.min()) if len(values) else None
            entry["max"] = jsonable(values.max()) if len(values) else None
        else:
            seen = [jsonable(v) for v in col.dropna().unique().tolist()]
            entry["kind"] = "categorical"
            entry["categories"] = sorted(seen, key=lambda v: (type(v).__name__, v))
            entry["unknown"] = unknown
        columns.append(entry)
    out: dict[str, Any] = {
        "format_version": 1,
        "problem": usecase.goal.problem,
        "target": usecase.goal.target,
        "features": columns,
    }
    if usecase.goal.problem != "regression":
        out["classes"] = jsonable(list(getattr(fitted, "classes_", [])))
    return out


def reference_profile(usecase: UseCase, features: FeatureSet, frame: Any, fitted: Any) -> str:
    """The monitoring reference profile (JSON text) of the training frame: the features as train
    used them, the fitted model's predictions on them and the target."""
    from mlopsctl.monitor import profile

    x = frame[features.columns]
    # the profile keeps one of the two: a binary classifier's positive-class probability, or
    # else the predicted values. Predicting the whole training set costs as much as a good part
    # of the fit (~1 s per 100k rows for boosted trees): never compute the one that is dropped.
    if usecase.goal.problem == "binary_classification" and hasattr(fitted, "predict_proba"):
        scores = profile.prediction_values((), fitted.predict_proba(x), usecase.goal.problem)
    else:
        scores = profile.prediction_values(fitted.predict(x), None, usecase.goal.problem)
    built = profile.build_profile(
        frame, list(features.numeric), list(features.categorical), scores, usecase.goal.target
    )
    return profile.dumps(built)


def handled_breach(ctx: StageContext) -> str | None:
    """The id of the recorded monitoring breach this training answers (``on_breach: retrain``).

    The planner schedules train while the committed breach record's id differs from the one
    training.json carries; recording it here is what marks the breach as handled, even when
    retraining on the same data gives the same model.
    """
    from mlopsctl.plan.monitoring import read_breach

    # recorded whatever monitoring.on_breach says, so that train never reads (nor re-runs for)
    # that key
    breach = read_breach(ctx.root, ctx.paths)
    return breach.id if breach is not None else None


def _unknown_policy(fitted: Any) -> str:
    """What the fitted pipeline's categorical encoder does with an unseen category."""
    preprocess = getattr(fitted, "named_steps", {}).get("preprocess")
    for name, transformer, _cols in getattr(preprocess, "transformers_", []):
        if name != "categorical":
            continue
        encoder = getattr(transformer, "named_steps", {}).get("encode", transformer)
        return _UNKNOWN.get(str(getattr(encoder, "handle_unknown", "error")), "error")
    return "error"


def _param_value(value: Any) -> Any:
    """A param as JSON: plain values as they are, anything else (estimators, callables) as repr."""
    import json

    converted = jsonable(value)
    try:
        json.dumps(converted, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)
    return converted


def library_versions() -> dict[str, str]:
    import numpy
    import pandas
    import sklearn
    import skops

    return {
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "pandas": pandas.__version__,
        "numpy": numpy.__version__,
        "skops": skops.__version__,
    }
