"""The reference profile: what a batch is compared with, computed once from the training data.

``train`` writes it for every use case and the deployment bundle carries it, so a check never
needs the training data itself. It is a JSON document, deterministic for the same data (sorted
keys, floats rounded to 12 significant digits before the counts are made against them):

```
{"format_version": 1, "rows": 1000, "columns": {"age": "float64", ...},
 "bins": 10, "grid": 100,
 "features": {"age": {"type": "numeric", "dtype": "float64", "rows": 1000, "missing": 3,
                      "bins": {"edges": [...], "discrete": false, "counts": [...]},
                      "grid": {"edges": [...], "discrete": false, "counts": [...]},
                      "min": 18.0, "max": 90.0, "mean": 41.2, "std": 12.9},
              "contract": {"type": "categorical", "dtype": "object", "rows": 1000, "missing": 0,
                           "categories": {"monthly": 512, ...}}},
 "prediction": {...a numeric or categorical entry...} or null,
 "target": {"name": "churned", ...an entry...} or null}
```

Frequencies are the counts over ``rows - missing``; missing rates are ``missing / rows``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlopsctl.monitor.stats import Binning, quantile_binning_sorted, round_sig

if TYPE_CHECKING:
    import numpy.typing as npt

FORMAT_VERSION = 1
#: quantile bins for PSI: deciles, the convention PSI thresholds (0.1, 0.2, 0.25) come from
PSI_BINS = 10
#: the finer quantile grid for KS distances and histograms: a KS distance on it is exact up to
#: about 1 / GRID_BINS of reference mass
GRID_BINS = 100


def build_profile(
    frame: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    predictions: npt.ArrayLike | None = None,
    target: str | None = None,
    *,
    bins: int = PSI_BINS,
    grid: int = GRID_BINS,
) -> dict[str, Any]:
    """The reference profile of *frame* (the training data) as a JSON-ready dict.

    *predictions*: the model's predictions on *frame* (scores or labels, one per row), profiled
    like a feature; see :func:`prediction_values`.
    """
    if bins < 2 or grid < 2:
        raise ValueError("bins and grid need at least 2 quantile bins each")
    missing = [c for c in [*numeric, *categorical] if c not in frame.columns]
    if missing:
        raise ValueError(f"the reference frame lacks the features: {', '.join(missing)}")
    features: dict[str, Any] = {}
    for name in numeric:
        features[name] = numeric_entry(frame[name], bins, grid)
    for name in categorical:
        features[name] = categorical_entry(frame[name])
    prediction = None
    if predictions is not None:
        series = pd.Series(np.asarray(predictions))
        if len(series) != len(frame):
            raise ValueError(f"{len(series)} predictions for {len(frame)} rows")
        prediction = entry(series, bins, grid)
    target_entry = None
    if target is not None and target in frame.columns:
        target_entry = {"name": target, **entry(frame[target], bins, grid)}
    return {
        "format_version": FORMAT_VERSION,
        "rows": len(frame),
        "columns": {str(c): str(frame[c].dtype) for c in frame.columns},
        "bins": bins,
        "grid": grid,
        "features": features,
        "prediction": prediction,
        "target": target_entry,
    }


def entry(series: pd.Series, bins: int = PSI_BINS, grid: int = GRID_BINS) -> dict[str, Any]:
    """A numeric entry for a numeric (non-boolean) column, else a categorical one."""
    if is_numeric(series):
        return numeric_entry(series, bins, grid)
    return categorical_entry(series)


def is_numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series)) and not pd.api.types.is_bool_dtype(series)


def numeric_entry(series: pd.Series, bins: int = PSI_BINS, grid: int = GRID_BINS) -> dict[str, Any]:
    """Quantile bins and counts, the fine grid, missing count and moments of a numeric column."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.sort(values[np.isfinite(values)])
    coarse = quantile_binning_sorted(finite, bins)
    fine = coarse if coarse.discrete else quantile_binning_sorted(finite, grid)
    out: dict[str, Any] = {
        "type": "numeric",
        "dtype": str(series.dtype),
        "rows": int(values.size),
        "missing": int(values.size - finite.size),
        "bins": _binned(coarse, finite),
        "grid": _binned(fine, finite),
    }
    if finite.size:
        out.update(
            min=round_sig(float(finite.min())),
            max=round_sig(float(finite.max())),
            mean=round_sig(float(finite.mean())),
            std=round_sig(float(finite.std())),
        )
    return out


def _binned(binning: Binning, ordered: npt.NDArray[np.float64]) -> dict[str, Any]:
    return {**binning.to_dict(), "counts": [int(c) for c in binning.count_sorted(ordered)]}


def categorical_entry(series: pd.Series) -> dict[str, Any]:
    """Category counts and missing count of a categorical column (categories as strings)."""
    counts, missing = category_counts(series)
    return {
        "type": "categorical",
        "dtype": str(series.dtype),
        "rows": len(series),
        "missing": missing,
        "categories": dict(sorted(counts.items())),
    }


def category_counts(series: pd.Series) -> tuple[dict[str, int], int]:
    """How often each category occurs, and how many values are missing.

    Categories are compared as strings, the same whichever way the column was read: integral
    floats print as integers (``1.0`` -> ``"1"``, since a CSV column with a gap reads as float).
    Values are counted first and only the distinct keys are turned into strings, so a column of
    a million strings is hashed once and never copied.
    """
    counts = series.value_counts(dropna=True, sort=False)
    out: dict[str, int] = {}
    for key, n in zip(counts.index.tolist(), counts.to_numpy().tolist(), strict=True):
        name = category_key(key)
        out[name] = out.get(name, 0) + int(n)
    return out, len(series) - int(counts.sum())


def category_key(value: Any) -> str:
    """One category as a string (see :func:`category_counts`)."""
    if isinstance(value, float | np.floating) and math.isfinite(value) and value == int(value):
        return str(int(value))
    return str(value)


def prediction_values(
    labels: npt.ArrayLike, proba: npt.ArrayLike | None = None, problem: str = "regression"
) -> npt.NDArray[Any]:
    """What the prediction distribution is made of: the positive-class score for a binary
    classifier with probabilities, otherwise the predicted values (labels or numbers)."""
    if problem == "binary_classification" and proba is not None:
        p = np.asarray(proba, dtype=np.float64)
        return p[:, 1] if p.ndim == 2 else p
    return np.asarray(labels)


def dumps(profile: dict[str, Any]) -> str:
    """The profile as deterministic JSON text (sorted keys, two-space indent, final newline)."""
    return json.dumps(profile, sort_keys=True, indent=2, allow_nan=False) + "\n"


def loads(text: str) -> dict[str, Any]:
    """A profile from its JSON text; refuses one of another format version."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"not a reference profile of format_version {FORMAT_VERSION}")
    return data
