"""Shared helpers of the built-in stages: Parquet I/O, JSON-safe values, feature selection.

pandas, numpy and pyarrow are imported inside the functions, so that importing a stage module
stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlopsctl.errors import StageFailedError
from mlopsctl.fsutil import atomic_write
from mlopsctl.spec.model import UseCase
from mlopsctl.stages.base import StageContext

if TYPE_CHECKING:
    import pandas as pd

#: how many example values a report or an error message shows
MAX_EXAMPLES = 5


# --- Parquet ----------------------------------------------------------------------------------


def read_parquet(ctx: StageContext, rel: str, what: str) -> pd.DataFrame:
    """Read the Parquet input *rel* (*what* names it in errors, e.g. "the snapshot")."""
    import pandas as pd

    path = ctx.input(rel)
    if not path.is_file():
        raise StageFailedError(f"{what} {rel} does not exist (run the stage that writes it first)")
    try:
        return pd.read_parquet(path, engine="pyarrow")
    except Exception as exc:  # pyarrow raises ArrowInvalid & co. for a damaged file
        raise StageFailedError(f"cannot read {what} {rel}: {exc}") from exc


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write *frame* deterministically: pyarrow, index dropped, fixed options, atomic."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy", use_dictionary=True, write_statistics=True)
    atomic_write(path, sink.getvalue().to_pybytes())


# --- JSON-safe values -------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """*value* as plain JSON: numpy scalars to Python, NaN/NaT to None, inf and others to str."""
    import numpy as np

    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return float(value) if math.isfinite(value) else str(value)
    if _is_missing(value):
        return None
    if hasattr(value, "isoformat"):  # datetime, date, pandas Timestamp
        return str(value.isoformat())
    return repr(value)


def _is_missing(value: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def examples(values: Iterable[Any], limit: int = MAX_EXAMPLES) -> list[Any]:
    """The first *limit* distinct values, in order of appearance, JSON-safe."""
    out: list[Any] = []
    seen: set[str] = set()
    for value in values:
        item = jsonable(value)
        key = repr(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
            if len(out) == limit:
                break
    return out


def show(value: Any) -> str:
    """A value as a user reads it in a message: ``7``, ``1.5``, ``'gold'``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return repr(value)
    return str(value)


def show_list(values: Sequence[Any]) -> str:
    return ", ".join(show(v) for v in values)


def number(value: float) -> str:
    """A bound as a user wrote it: ``18`` rather than ``18.0``."""
    return f"{value:g}"


# --- features ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSet:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    dropped: tuple[str, ...]  # read but unused: data.features.drop, join keys, the time column
    inferred: bool

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_json(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "dropped": list(self.dropped),
            "inferred": self.inferred,
        }


def implicit_drops(usecase: UseCase) -> list[str]:
    """Columns that are never features unless listed as such: join keys, the time-split column."""
    out: list[str] = []
    for join in usecase.data.join:
        out.extend(k for k in join.keys if k not in out)
    split = usecase.data.split
    if split.method == "time" and split.column and split.column not in out:
        out.append(split.column)
    return out


def select_features(usecase: UseCase, frame: pd.DataFrame) -> FeatureSet:
    """The numeric and categorical feature columns of *frame*, declared or inferred."""
    import pandas as pd

    target = usecase.goal.target
    columns = [str(c) for c in frame.columns]
    if target not in columns:
        raise StageFailedError(f"the target column '{target}' is not in the data")
    implicit = implicit_drops(usecase)
    declared = usecase.data.features
    if declared is not None:
        listed = [*declared.numeric, *declared.categorical, *declared.drop]
        missing = [c for c in listed if c not in columns]
        if missing:
            raise StageFailedError(
                "data.features lists columns that are not in the data: "
                + ", ".join(f"'{c}'" for c in missing)
            )
        for col in columns:
            if col == target or col in listed or col in implicit:
                continue
            raise StageFailedError(
                f"column '{col}' is neither a feature nor dropped "
                "(add it to data.features or data.features.drop)"
            )
        for col in declared.numeric:
            dtype = frame[col].dtype
            if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
                sample = examples(frame[col].dropna(), 3)
                raise StageFailedError(
                    f"column '{col}' is listed as numeric but holds {dtype} values "
                    f"(e.g. {show_list(sample)}); list it under data.features.categorical"
                )
        if not declared.numeric and not declared.categorical:
            raise StageFailedError("data.features lists no numeric and no categorical column")
        features = {*declared.numeric, *declared.categorical}
        dropped = [c for c in columns if c != target and c not in features]
        return FeatureSet(
            numeric=tuple(declared.numeric),
            categorical=tuple(declared.categorical),
            dropped=tuple(dropped),
            inferred=False,
        )
    numeric: list[str] = []
    categorical: list[str] = []
    dropped = []
    for col in columns:
        if col == target:
            continue
        dtype = frame[col].dtype
        if col in implicit:
            dropped.append(col)
        elif pd.api.types.is_bool_dtype(dtype):
            categorical.append(col)
        elif pd.api.types.is_numeric_dtype(dtype):
            numeric.append(col)
        elif (
            pd.api.types.is_object_dtype(dtype)
            or pd.api.types.is_string_dtype(dtype)
            or isinstance(dtype, pd.CategoricalDtype)
        ):
            categorical.append(col)
        else:  # datetimes, timedeltas, intervals: no meaning to a model as they are
            dropped.append(col)
    if not numeric and not categorical:
        raise StageFailedError("the data has no feature columns besides the target")
    return FeatureSet(tuple(numeric), tuple(categorical), tuple(dropped), inferred=True)
