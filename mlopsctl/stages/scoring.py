"""Scoring against a model's input signature: shared by batch deploy and `mlopsctl serve`.

Both paths turn their input (a DataFrame read from a file, or JSON records) into the same model
frame with :func:`model_frame` and predict with :func:`predict`, so that a row scored by the
batch stage and the same row posted to the server get bit-identical results.

:func:`predict` transforms a whole batch at once (the preprocessing steps are element-wise, so a
row's transform does not depend on its neighbours) but calls the final estimator one row at a
time: BLAS kernels sum in a different order for a matrix than for a single row, and a model must
answer a row the same whether it arrives alone or in a micro-batch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlopsctl.errors import StageFailedError

if TYPE_CHECKING:
    import pandas as pd

#: how many offending values or rows a problem message shows
SHOW = 5


@dataclass(frozen=True)
class Feature:
    """One input column of the model, as train saw it."""

    name: str
    kind: str  # numeric | categorical
    dtype: str
    nullable: bool
    integer: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[Any, ...] = ()
    unknown: str = "error"  # what the encoder does with an unseen category: ignore | encode | error

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "nullable": self.nullable,
        }
        if self.kind == "numeric":
            out.update(integer=self.integer, min=self.min, max=self.max)
        else:
            out.update(categories=list(self.categories), unknown=self.unknown)
        return out


@dataclass(frozen=True)
class Signature:
    """The model's input signature (``signature.json``, written by train)."""

    problem: str
    target: str
    features: tuple[Feature, ...]
    classes: tuple[Any, ...] = ()

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def is_classifier(self) -> bool:
        return self.problem != "regression"

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Signature:
        features = tuple(
            Feature(
                name=str(f["name"]),
                kind=str(f["kind"]),
                dtype=str(f.get("dtype", "")),
                nullable=bool(f.get("nullable", True)),
                integer=bool(f.get("integer", False)),
                min=f.get("min"),
                max=f.get("max"),
                categories=tuple(f.get("categories", ())),
                unknown=str(f.get("unknown", "error")),
            )
            for f in doc["features"]
        )
        return cls(
            problem=str(doc["problem"]),
            target=str(doc.get("target", "")),
            features=features,
            classes=tuple(doc.get("classes", ())),
        )

    @classmethod
    def load(cls, path: Path) -> Signature:
        try:
            doc = json.loads(path.read_text("utf-8"))
            return cls.from_json(doc)
        except FileNotFoundError as exc:
            raise StageFailedError(f"{path.name} does not exist (run train first)") from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StageFailedError(f"cannot read the signature {path}: {exc}") from exc


# --- input checks -----------------------------------------------------------------------------


def check_frame(sig: Signature, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """*frame*'s feature columns as the model takes them, and every way it breaks *sig*.

    Problems: a missing column, a value of the wrong type, a missing value where the model
    takes none, a category the encoder cannot take. Extra columns are ignored.
    """
    import pandas as pd

    problems: list[str] = []
    columns: dict[str, list[Any]] = {}
    for feature in sig.features:
        if feature.name not in frame.columns:
            problems.append(f"missing column '{feature.name}'")
            continue
        col = frame[feature.name]
        values = [None if _missing(v) else v for v in col.tolist()]
        if feature.kind == "categorical":
            values = _as_category_type(feature, values)
        problems.extend(_column_problems(feature, values))
        columns[feature.name] = values
    if problems:
        return pd.DataFrame(), problems
    return model_frame(sig, columns), []


def _column_problems(feature: Feature, values: Sequence[Any]) -> list[str]:
    out: list[str] = []
    name = feature.name
    nulls = [i for i, v in enumerate(values) if v is None]
    if nulls and not feature.nullable:
        out.append(
            f"column '{name}': {len(nulls)} missing value(s) (rows {_rows(nulls)}); "
            "the model was trained without missing values and has no imputer"
        )
    if feature.kind == "numeric":
        bad = [i for i, v in enumerate(values) if v is not None and not _is_number(v)]
        if bad:
            shown = ", ".join(repr(values[i]) for i in bad[:SHOW])
            out.append(
                f"column '{name}': expected numbers ({feature.dtype}), found {shown} "
                f"(rows {_rows(bad)})"
            )
        return out
    wanted = {_category_type(c) for c in feature.categories}
    bad = [i for i, v in enumerate(values) if v is not None and _category_type(v) not in wanted]
    if bad and feature.categories:
        shown = ", ".join(repr(values[i]) for i in bad[:SHOW])
        kinds = "/".join(sorted(wanted))
        out.append(
            f"column '{name}': expected {kinds} categories, found {shown} (rows {_rows(bad)})"
        )
        return out
    if feature.unknown == "error":
        seen = set(feature.categories)
        unseen = [i for i, v in enumerate(values) if v is not None and v not in seen]
        if unseen:
            shown = ", ".join(repr(v) for v in dict.fromkeys(values[i] for i in unseen))
            out.append(
                f"column '{name}': categories not seen in training, which the encoder refuses: "
                f"{shown} (rows {_rows(unseen)})"
            )
    return out


def _as_category_type(feature: Feature, values: list[Any]) -> list[Any]:
    """Integers read from a text file as the strings training saw (CSV infers '7' as 7)."""
    if not feature.categories or any(not isinstance(c, str) for c in feature.categories):
        return values
    return [str(v) if _category_type(v) == "integer" else v for v in values]


def _rows(indexes: Sequence[int]) -> str:
    """Row numbers as a user counts them (first data row = 1)."""
    shown = ", ".join(str(i + 1) for i in indexes[:SHOW])
    return shown + (f", ... ({len(indexes)} in all)" if len(indexes) > SHOW else "")


def _is_number(value: Any) -> bool:
    import numpy as np

    if isinstance(value, bool | np.bool_):
        return False
    return isinstance(value, int | float | np.integer | np.floating)


def _category_type(value: Any) -> str:
    import numpy as np

    if isinstance(value, bool | np.bool_):
        return "boolean"
    if isinstance(value, int | np.integer):
        return "integer"
    if isinstance(value, float | np.floating):
        return "number"
    return "string"


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    try:
        import pandas as pd

        return bool(pd.isna(value)) if not isinstance(value, str) else False
    except (TypeError, ValueError):
        return False


def model_frame(sig: Signature, columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """The frame the model is fed: numeric columns float64 (None -> NaN), categoricals object.

    Built the same way from a file and from JSON records, so both score identically.
    """
    import numpy as np
    import pandas as pd

    data: dict[str, Any] = {}
    for feature in sig.features:
        values = columns[feature.name]
        if feature.kind == "numeric":
            data[feature.name] = np.array(
                [np.nan if v is None else float(v) for v in values], dtype=np.float64
            )
        else:
            arr = np.empty(len(values), dtype=object)
            arr[:] = [np.nan if v is None else _plain(v) for v in values]
            data[feature.name] = arr
    return pd.DataFrame(data, columns=sig.names)


def _plain(value: Any) -> Any:
    """numpy scalars as Python values (the encoder compares them with the categories)."""
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, str) else value


# --- prediction -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """Predictions for n rows; probabilities (n x classes) for classifiers that have them."""

    predictions: list[Any]
    probabilities: list[list[float]] | None
    classes: list[Any]


def last_step(model: Any, x: Any) -> tuple[Any, Any]:
    """The estimator that predicts, and *x* as it receives it.

    A fitted Pipeline's predict, predict_proba and decision_function each pass *x* through all
    steps but the last, then ask the last. Here the steps transform *x* once and the last step
    can answer several of them (evaluate asks two; scoring shares the pass between rows): the
    calls Pipeline makes, so the same numbers. Not a pipeline: the model itself, *x* as it is.
    """
    steps = getattr(model, "steps", None)
    if steps and len(steps) > 1:
        return steps[-1][1], model[:-1].transform(x)
    return model, x


def predict(model: Any, frame: pd.DataFrame) -> Scores:
    """Score every row of *frame* exactly as ``model.predict(frame.iloc[[i]])`` would."""
    n = len(frame)
    if n == 0:
        return Scores([], None, _classes(model))
    final, transformed = last_step(model, frame)
    return _final_scores(model, final, transformed, n)


def predict_preprocessed(model: Any, transformed: Any, n: int) -> Scores:
    """Score *n* rows already through *model*'s preprocessing (all steps but the last)."""
    return _final_scores(model, model.steps[-1][1], transformed, n)


def _final_scores(model: Any, final: Any, transformed: Any, n: int) -> Scores:
    import sklearn

    has_proba = hasattr(final, "predict_proba") and hasattr(final, "classes_")
    if row_invariant(final):
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            preds = [_plain(p) for p in final.predict(transformed)]
            probas = final.predict_proba(transformed).tolist() if has_proba else None
        return Scores(preds, probas, _classes(model))
    rows = _row_getter(transformed)
    preds = []
    probas = []
    # the inputs were checked once for the whole batch; sklearn's per-call checks add nothing
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        for i in range(n):
            row = rows(i)
            preds.append(_plain(final.predict(row)[0]))
            if has_proba:
                probas.append([float(p) for p in final.predict_proba(row)[0]])
    return Scores(preds, probas if has_proba else None, _classes(model))


#: estimators whose prediction for a row does not depend on the other rows of the call, to the
#: bit: trees and tree ensembles walk each row alone and add tree outputs in a fixed order.
#: Anything else (linear models, kernels, neural nets) goes through BLAS, whose matrix kernels
#: round differently from its single-row ones, so it is called one row at a time.
ROW_INVARIANT_MODULES = (
    "sklearn.tree.",
    "sklearn.ensemble._forest",
    "sklearn.ensemble._gb",
    "sklearn.ensemble._hist_gradient_boosting.",
)


def row_invariant(estimator: Any) -> bool:
    """True when *estimator* predicts a row the same alone or within a batch."""
    module = type(estimator).__module__
    if not module.startswith(ROW_INVARIANT_MODULES):
        return False
    # forests add trees from parallel threads in whatever order they finish
    return getattr(estimator, "n_jobs", None) in (None, 1)


def _row_getter(data: Any) -> Any:
    if hasattr(data, "iloc"):
        return lambda i: data.iloc[i : i + 1]
    return lambda i: data[i : i + 1]


def _classes(model: Any) -> list[Any]:
    classes = getattr(model, "classes_", None)
    return [] if classes is None else [_plain(c) for c in classes]


def jsonable_prediction(value: Any) -> Any:
    """A prediction as JSON: floats stay floats (NaN -> None), labels as they are."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
