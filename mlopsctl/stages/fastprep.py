"""The preprocessing that train builds, replayed on plain numpy arrays, for serving.

A fitted ``ColumnTransformer`` costs milliseconds per call in pandas and validation overhead,
whatever the number of rows; a served request carries one. :func:`compile_preprocessing`
reads the fitted steps (imputers, scalers, one-hot and ordinal encoders) and returns a function
that performs the same element-wise operations in the same order on arrays built straight from
the request values, so that every number comes out bit for bit as scikit-learn makes it (IEEE
subtraction, division and multiplication are exactly rounded, whatever the vector width).

Nothing is trusted blindly: the compiled function is compared with scikit-learn's transform on
probe rows built from the signature (ranges, every category, missing values, an unseen
category); any difference, or any step it does not know, means ``None``: the caller then uses
scikit-learn's own transform.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mlopsctl.stages.scoring import Signature, model_frame

Columns = Mapping[str, Sequence[Any]]
Transform = Callable[[Columns, int], Any]


def compile_preprocessing(model: Any, signature: Signature) -> Transform | None:
    """A fast, verified equivalent of ``model[:-1].transform``, or None."""
    try:
        transform = _compile(model)
    except _Unsupported:
        return None
    if transform is None or not _verified(model, signature, transform):
        return None
    return transform


class _Unsupported(Exception):
    pass


def _compile(model: Any) -> Transform | None:
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    steps = getattr(model, "steps", None)
    if not steps or len(steps) != 2 or type(steps[0][1]) is not ColumnTransformer:
        return None
    ct = steps[0][1]
    blocks: list[tuple[list[str], list[Callable[[Any], Any]], bool]] = []
    for name, trans, cols in ct.transformers_:
        if isinstance(trans, str):
            if trans == "drop":
                continue
            if trans == "passthrough" and name != "remainder":
                blocks.append((list(cols), [], True))
                continue
            raise _Unsupported(name)
        chain = trans.steps if type(trans) is Pipeline else [("only", trans)]
        ops = [_op(step) for _n, step in chain]
        numeric = not any(getattr(op, "categorical", False) for op in ops)
        blocks.append((list(cols), ops, numeric))

    def transform(columns: Columns, n: int) -> Any:
        parts = []
        for cols, ops, numeric in blocks:
            if numeric:
                x = np.empty((n, len(cols)), dtype=np.float64)
                for j, c in enumerate(cols):
                    x[:, j] = [math.nan if v is None else v for v in columns[c]]
            else:
                x = np.empty((n, len(cols)), dtype=object)
                for j, c in enumerate(cols):
                    x[:, j] = [math.nan if v is None else v for v in columns[c]]
            for op in ops:
                x = op(x)
            parts.append(x)
        return np.hstack(parts) if len(parts) > 1 else parts[0]

    return transform


def _op(step: Any) -> Callable[[Any], Any]:
    """One fitted step as an array function (the same operations, in the same order)."""
    import numpy as np
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import (
        MinMaxScaler,
        OneHotEncoder,
        OrdinalEncoder,
        RobustScaler,
        StandardScaler,
    )

    kind = type(step)
    if kind is SimpleImputer:
        stats = step.statistics_
        if step.add_indicator or not _is_nan(step.missing_values):
            raise _Unsupported("imputer")
        if stats.dtype.kind == "f" and np.isnan(stats).any():
            raise _Unsupported("an all-missing column")  # sklearn drops it

        def impute(x: Any) -> Any:
            mask = x != x  # NaN, for floats and objects alike
            if mask.any():
                x = x.copy()
                rows, cols = np.nonzero(mask)
                x[rows, cols] = stats[cols]
            return x

        impute.categorical = stats.dtype.kind == "O"  # type: ignore[attr-defined]
        return impute
    if kind is StandardScaler:
        mean = step.mean_ if step.with_mean else None
        scale = step.scale_ if step.with_std else None

        def standard(x: Any) -> Any:
            x = np.array(x, dtype=np.float64)
            if mean is not None:
                x -= mean
            if scale is not None:
                x /= scale
            return x

        return standard
    if kind is MinMaxScaler:
        if step.clip:
            raise _Unsupported("clip")

        def minmax(x: Any) -> Any:
            x = np.array(x, dtype=np.float64)
            x *= step.scale_
            x += step.min_
            return x

        return minmax
    if kind is RobustScaler:

        def robust(x: Any) -> Any:
            x = np.array(x, dtype=np.float64)
            if step.with_centering:
                x -= step.center_
            if step.with_scaling:
                x /= step.scale_
            return x

        return robust
    if kind in (OneHotEncoder, OrdinalEncoder):
        return _encoder(step, kind is OneHotEncoder)
    raise _Unsupported(kind.__name__)


def _encoder(step: Any, onehot: bool) -> Callable[[Any], Any]:
    import numpy as np

    categories = step.categories_
    for cats in categories:
        if any(_is_nan(c) for c in cats.tolist()):
            raise _Unsupported("NaN category")
    index = [{c: i for i, c in enumerate(cats.tolist())} for cats in categories]
    if onehot:
        if (
            step.drop is not None
            or getattr(step, "_infrequent_enabled", False)
            or step.handle_unknown not in ("ignore", "infrequent_if_exist")
            or getattr(step, "sparse_output", False)
        ):
            raise _Unsupported("one-hot options")
        offsets = np.cumsum([0, *(len(c) for c in categories)])
        width = int(offsets[-1])

        def encode_onehot(x: Any) -> Any:
            out = np.zeros((x.shape[0], width), dtype=np.float64)
            for j, lookup in enumerate(index):
                for i, value in enumerate(x[:, j].tolist()):
                    k = lookup.get(value)
                    if k is not None:
                        out[i, offsets[j] + k] = 1.0
            return out

        encode_onehot.categorical = True  # type: ignore[attr-defined]
        return encode_onehot
    if getattr(step, "_infrequent_enabled", False) or step.handle_unknown != "use_encoded_value":
        raise _Unsupported("ordinal options")
    unknown = float(step.unknown_value)

    def encode_ordinal(x: Any) -> Any:
        out = np.empty(x.shape, dtype=np.float64)
        for j, lookup in enumerate(index):
            for i, value in enumerate(x[:, j].tolist()):
                out[i, j] = lookup.get(value, unknown)
        return out

    encode_ordinal.categorical = True  # type: ignore[attr-defined]
    return encode_ordinal


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _verified(model: Any, signature: Signature, transform: Transform) -> bool:
    """Bit-for-bit the same as scikit-learn on probe rows covering the signature."""
    import numpy as np

    probes: dict[str, list[Any]] = {}
    for f in signature.features:
        if f.kind == "numeric":
            lo = f.min if f.min is not None else 0.0
            hi = f.max if f.max is not None else 1.0
            values: list[Any] = [lo, hi, (lo + hi) / 2, 0.0, -1.5, 1e6, 0.1, lo + 1e-9]
        else:
            values = [*f.categories, "\x00unseen"] if f.unknown != "error" else [*f.categories]
        if f.nullable:
            values.append(None)
        probes[f.name] = values
    n = max(len(v) for v in probes.values())
    columns = {name: [v[i % len(v)] for i in range(n)] for name, v in probes.items()}
    try:
        expected = model[:-1].transform(model_frame(signature, columns))
        got = transform(columns, n)
    except Exception:
        return False
    expected = np.asarray(expected)
    if got.shape != expected.shape or got.dtype != expected.dtype:
        return False
    return bool(np.array_equal(got, expected, equal_nan=True))
