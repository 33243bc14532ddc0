"""Check a current batch against a reference profile: drift, data quality, schema, performance.

The batch is read in chunks (CSV through pandas' chunked reader, Parquet by row batches) and
every statistic is accumulated into fixed-size histograms, so memory depends on the chunk size
and the number of bins, not on the batch: a 1 GB CSV is checked in the memory of one chunk.
The one exception is performance: scoring metrics such as ROC AUC need every (target, score)
pair, so when the batch carries the target those two columns (a few floats per row) are kept.

Models are not loaded here: the caller passes a *predict* callable (see :class:`Predictions`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlopsctl.errors import MlopsctlError
from mlopsctl.monitor.profile import category_counts, prediction_values
from mlopsctl.monitor.stats import (
    TESTS,
    Binning,
    CategoryCounter,
    NumericCounter,
    StatTest,
    category_histograms,
    drop_empty,
    ks_pvalue,
    round_sig,
    test_for,
)

if TYPE_CHECKING:
    import numpy.typing as npt

    from mlopsctl.spec.model import UseCase

#: rows per chunk read from the batch
CHUNK_ROWS = 100_000
#: unseen categories named in one problem message
MAX_NAMED = 5
#: significant digits of the values in the JSON output
DIGITS = 6


class MonitorInputError(MlopsctlError):
    """The batch or the profile cannot be read."""


# --- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricBound:
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Settings:
    """The ``monitoring`` values a check reads (and the goal it needs for performance)."""

    method: str = "psi"
    threshold: float = 0.2
    features: tuple[str, ...] | None = None
    max_missing: float | None = None
    performance: Mapping[str, MetricBound] = field(default_factory=dict)
    problem: str = "regression"
    target: str | None = None

    @classmethod
    def from_usecase(cls, usecase: UseCase) -> Settings:
        """The settings of a use case's ``monitoring`` section (defaults without one)."""
        mon = usecase.monitoring
        base = cls(problem=usecase.goal.problem, target=usecase.goal.target)
        if mon is None:
            return base
        return cls(
            method=mon.drift.method,
            threshold=mon.drift.threshold,
            features=mon.drift.features,
            max_missing=mon.data_quality.max_missing,
            performance={k: MetricBound(b.min, b.max) for k, b in mon.performance.items()},
            problem=base.problem,
            target=base.target,
        )


@dataclass(frozen=True)
class Predictions:
    """A model's output on one chunk: predicted values, and class probabilities when it has
    them (columns in the order of *classes*)."""

    labels: npt.NDArray[Any]
    proba: npt.NDArray[np.float64] | None = None
    classes: Sequence[Any] | None = None


Predictor = Callable[[pd.DataFrame], Predictions]


def model_predictor(model: Any) -> Predictor:
    """A :data:`Predictor` over an already loaded scikit-learn style estimator."""

    def predict(frame: pd.DataFrame) -> Predictions:
        names = [str(c) for c in getattr(model, "feature_names_in_", frame.columns)]
        x = frame[names]
        proba = model.predict_proba(x) if hasattr(model, "predict_proba") else None
        return Predictions(np.asarray(model.predict(x)), proba, getattr(model, "classes_", None))

    return predict


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Histogram:
    """Reference and current proportions over the same bins, for reports."""

    labels: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]


@dataclass(frozen=True)
class FeatureResult:
    name: str
    type: str
    statistic: str
    value: float | None
    threshold: float
    drifted: bool
    missing: float | None = None
    p_value: float | None = None
    histogram: Histogram | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "statistic": self.statistic,
            "value": _num(self.value),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "missing": _num(self.missing),
        }
        if self.p_value is not None:
            out["p_value"] = _num(self.p_value)
        return out


@dataclass(frozen=True)
class MetricResult:
    value: float | None
    min: float | None
    max: float | None

    @property
    def holds(self) -> bool:
        v = self.value
        return (
            v is not None
            and (self.min is None or v >= self.min)
            and (self.max is None or v <= self.max)
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": _num(self.value), "holds": self.holds}
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        return out


@dataclass(frozen=True)
class MonitorResult:
    """The verdict on one use case's batch; :meth:`to_json` is the stable output format."""

    usecase: str
    rows: int
    features: tuple[FeatureResult, ...]
    problems: tuple[str, ...]
    performance: Mapping[str, MetricResult]
    prediction: FeatureResult | None = None

    @property
    def breach(self) -> bool:
        return (
            any(f.drifted for f in self.features)
            or bool(self.problems)
            or any(not m.holds for m in self.performance.values())
            or (self.prediction is not None and self.prediction.drifted)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "usecase": self.usecase,
            "breach": self.breach,
            "rows": self.rows,
            "features": [f.to_json() for f in self.features],
            "problems": list(self.problems),
            "performance": {k: m.to_json() for k, m in sorted(self.performance.items())},
            "prediction": self.prediction.to_json() if self.prediction else None,
        }


def _num(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round_sig(value, DIGITS)


# --- reading the batch ------------------------------------------------------------------------


def batch_columns(batch: str | Path | pd.DataFrame) -> list[str]:
    """The column names of a batch, reading no more than its header."""
    if isinstance(batch, pd.DataFrame):
        return [str(c) for c in batch.columns]
    path = Path(batch)
    try:
        if _is_parquet(path):
            import pyarrow.parquet as pq

            return [str(c) for c in pq.ParquetFile(path).schema_arrow.names]
        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except (OSError, ValueError) as exc:
        raise MonitorInputError(f"cannot read the batch {path}: {exc}") from exc


def iter_chunks(
    batch: str | Path | pd.DataFrame, columns: Sequence[str], chunk_rows: int = CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """The batch's *columns*, *chunk_rows* rows at a time."""
    if isinstance(batch, pd.DataFrame):
        for start in range(0, len(batch), chunk_rows):
            yield batch.iloc[start : start + chunk_rows][list(columns)]
        return
    path = Path(batch)
    try:
        if _is_parquet(path):
            import pyarrow.parquet as pq

            for record_batch in pq.ParquetFile(path).iter_batches(
                chunk_rows, columns=list(columns)
            ):
                yield record_batch.to_pandas()
            return
        with pd.read_csv(path, usecols=list(columns), chunksize=chunk_rows) as reader:
            yield from reader
    except (OSError, ValueError) as exc:  # pandas' ParserError is a ValueError
        raise MonitorInputError(f"cannot read the batch {path}: {exc}") from exc


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


# --- the check --------------------------------------------------------------------------------


def check(
    usecase: str,
    profile: Mapping[str, Any],
    batch: str | Path | pd.DataFrame,
    settings: Settings,
    predict: Predictor | None = None,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> MonitorResult:
    """Compare *batch* (a CSV or Parquet path, or a frame) with the reference *profile*."""
    if settings.method not in TESTS:
        names = ", ".join(sorted(TESTS))
        raise MonitorInputError(f"monitoring.drift.method: unknown '{settings.method}' ({names})")
    entries: Mapping[str, Any] = profile["features"]
    columns = batch_columns(batch)
    present = set(columns)
    problems: list[str] = []
    watched = list(settings.features) if settings.features else list(entries)
    unknown = [f for f in watched if f not in entries]
    if unknown:
        raise MonitorInputError(
            f"monitoring.drift.features: not in the reference profile: {', '.join(unknown)}"
        )
    problems += [f"missing column: {name}" for name in entries if name not in present]
    known = set(profile.get("columns", entries))
    problems += [f"new column: {name}" for name in columns if name not in known]

    target = settings.target if settings.target in present else None
    model_ready = predict is not None and all(name in present for name in entries)
    read = [n for n in entries if n in present] + ([target] if target else [])
    counters = _counters(entries, present)
    pred_counter = (
        _counter(profile["prediction"]) if model_ready and profile.get("prediction") else None
    )
    bad_numbers: dict[str, tuple[int, str]] = {}
    y_parts: list[npt.NDArray[Any]] = []
    pred_parts: list[Predictions] = []
    rows = 0

    for chunk in iter_chunks(batch, read, chunk_rows):
        rows += len(chunk)
        for name, counter in counters.items():
            _update(counter, chunk[name], name, bad_numbers)
        if model_ready and len(chunk):
            assert predict is not None
            preds = predict(chunk[list(entries)])
            if pred_counter is not None:
                values = prediction_values(preds.labels, preds.proba, settings.problem)
                _update(pred_counter, pd.Series(values), "prediction", {})
            if target and settings.performance:
                y_parts.append(chunk[target].to_numpy())
                pred_parts.append(preds)

    for name, (count, example) in sorted(bad_numbers.items()):
        problems.append(f"wrong dtype: {name}: {count} values are not numbers (e.g. {example!r})")

    features = []
    for name in watched:
        if name not in counters:
            continue
        result = _feature_result(name, entries[name], counters[name], settings)
        features.append(result)
        problems += _quality_problems(name, entries[name], counters[name], settings)
    prediction = None
    if pred_counter is not None:
        prediction = _feature_result("prediction", profile["prediction"], pred_counter, settings)
    performance: dict[str, MetricResult] = {}
    if y_parts:
        scores = goal_metrics(settings.problem, y_parts, pred_parts, list(settings.performance))
        performance = {
            k: MetricResult(scores.get(k), b.min, b.max) for k, b in settings.performance.items()
        }
    return MonitorResult(usecase, rows, tuple(features), tuple(problems), performance, prediction)


Counter = NumericCounter | CategoryCounter


def _counter(entry: Mapping[str, Any]) -> Counter:
    if entry["type"] == "numeric":
        return NumericCounter(Binning.from_dict(entry["bins"]), Binning.from_dict(entry["grid"]))
    return CategoryCounter()


def _counters(entries: Mapping[str, Any], present: set[str]) -> dict[str, Counter]:
    return {name: _counter(entry) for name, entry in entries.items() if name in present}


def _update(
    counter: Counter, column: pd.Series, name: str, bad_numbers: dict[str, tuple[int, str]]
) -> None:
    if isinstance(counter, NumericCounter):
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        else:  # text in a numeric column: count what is not a number, as a schema problem
            numbers = pd.to_numeric(column, errors="coerce")
            bad = column.notna() & numbers.isna()
            if bad.any():
                count, example = bad_numbers.get(name, (0, str(column[bad].iloc[0])))
                bad_numbers[name] = (count + int(bad.sum()), example)
            values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        counter.update(values)
        return
    counts, missing = category_counts(column)
    counter.update(counts, len(column), missing)


def _feature_result(
    name: str, entry: Mapping[str, Any], counter: Counter, settings: Settings
) -> FeatureResult:
    kind = entry["type"]
    test = test_for(settings.method, kind)
    threshold = settings.threshold if test.name == settings.method else test.default_threshold
    missing_rate = counter.missing / counter.rows if counter.rows else None
    ref, cur, labels = _histograms(test, entry, counter)
    if cur.sum() == 0:
        return FeatureResult(name, kind, test.name, None, threshold, False, missing_rate)
    value, drifted = test.function(ref, cur, threshold)
    p_value = None
    if test.name == "ks":
        p_value = ks_pvalue(value, int(ref.sum()), int(cur.sum()))
    shown_ref, shown_cur, shown_labels = ref, cur, labels
    if test.histogram.get(kind) == "grid":  # show the coarse bins; the grid is for the distance
        shown_ref, shown_cur, shown_labels = _histograms(test_for("psi", kind), entry, counter)
    return FeatureResult(
        name,
        kind,
        test.name,
        value,
        threshold,
        drifted,
        missing_rate,
        p_value,
        _histogram(shown_labels, shown_ref, shown_cur),
    )


def _histograms(
    test: StatTest, entry: Mapping[str, Any], counter: Counter
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], list[str]]:
    if isinstance(counter, CategoryCounter):
        keys, ref, cur = category_histograms(entry["categories"], counter.counts, counter.pooled)
        return ref, cur, keys
    which = test.histogram["numeric"]
    binning = Binning.from_dict(entry[which])
    ref = np.asarray(entry[which]["counts"], dtype=np.int64)
    cur = counter.grid_counts if which == "grid" else counter.counts
    keep = (ref > 0) | (cur > 0)
    labels = [label for label, k in zip(binning.labels(), keep, strict=True) if k]
    r, c = drop_empty(ref, cur)
    return r, c, labels


def _histogram(labels: list[str], ref: npt.NDArray[Any], cur: npt.NDArray[Any]) -> Histogram:
    rs, cs = max(int(ref.sum()), 1), max(int(cur.sum()), 1)
    return Histogram(
        tuple(labels),
        tuple(round_sig(x / rs, DIGITS) for x in ref.tolist()),
        tuple(round_sig(x / cs, DIGITS) for x in cur.tolist()),
    )


def _quality_problems(
    name: str, entry: Mapping[str, Any], counter: Counter, settings: Settings
) -> list[str]:
    out = []
    if settings.max_missing is not None and counter.rows:
        rate = counter.missing / counter.rows
        if rate > settings.max_missing:
            out.append(f"too many missing values: {name}: {rate:.1%} > {settings.max_missing:.1%}")
    if isinstance(counter, CategoryCounter):
        reference = entry["categories"]
        unseen = sorted(
            ((n, k) for k, n in counter.counts.items() if k not in reference),
            key=lambda t: (-t[0], t[1]),
        )
        if unseen or counter.pooled:
            named = ", ".join(f"{k!r} ({n} rows)" for n, k in unseen[:MAX_NAMED])
            more = len(unseen) - MAX_NAMED
            tail = f" and {more} more" if more > 0 else ""
            if counter.pooled:
                limit = counter.max_categories
                tail += f" and {counter.pooled} rows in categories past the first {limit}"
            out.append(f"unseen category: {name}: {named}{tail}")
    return out


# --- performance ------------------------------------------------------------------------------


def goal_metrics(
    problem: str,
    y_parts: Sequence[npt.NDArray[Any]],
    pred_parts: Sequence[Predictions],
    names: Sequence[str],
) -> dict[str, float]:
    """The goal metrics *names* of predictions against the target (rows without a target are
    left out); computed as the ``evaluate`` stage computes them, with scikit-learn."""
    from sklearn import metrics as m

    y = np.concatenate(y_parts)
    labels = np.concatenate([p.labels for p in pred_parts])
    probas = [p.proba for p in pred_parts if p.proba is not None]
    proba: npt.NDArray[np.float64] | None = (
        np.concatenate(probas) if len(probas) == len(pred_parts) else None
    )
    classes = list(pred_parts[0].classes) if pred_parts[0].classes is not None else None
    known = pd.notna(y)
    y, labels = y[known], labels[known]
    proba = proba[known] if proba is not None else None
    if y.size == 0:
        return {}
    out: dict[str, float] = {}
    if problem == "regression":
        y_f, p_f = y.astype(np.float64), labels.astype(np.float64)
        scores = {
            "rmse": lambda: math.sqrt(m.mean_squared_error(y_f, p_f)),
            "mae": lambda: m.mean_absolute_error(y_f, p_f),
            "r2": lambda: m.r2_score(y_f, p_f),
            "mape": lambda: m.mean_absolute_percentage_error(y_f, p_f),
        }
    else:
        positive = classes[1] if classes is not None and len(classes) == 2 else None
        scores = {
            "accuracy": lambda: m.accuracy_score(y, labels),
            "f1": lambda: m.f1_score(y, labels, pos_label=positive, zero_division=0),
            "precision": lambda: m.precision_score(y, labels, pos_label=positive, zero_division=0),
            "recall": lambda: m.recall_score(y, labels, pos_label=positive, zero_division=0),
            "f1_macro": lambda: m.f1_score(y, labels, average="macro", zero_division=0),
            "f1_weighted": lambda: m.f1_score(y, labels, average="weighted", zero_division=0),
        }
        if proba is not None and classes is not None:
            scores["log_loss"] = lambda: m.log_loss(y, proba, labels=classes)
            if positive is not None:
                scores["roc_auc"] = lambda: m.roc_auc_score(y == positive, proba[:, 1])
    for name in names:
        if name in scores:
            try:
                out[name] = float(scores[name]())
            except ValueError:  # e.g. ROC AUC of a batch holding one class: undefined
                continue
    return out
