"""split: the snapshot into a training set and a test set (Parquet), randomly or by time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlopsctl.errors import StageFailedError
from mlopsctl.spec.model import Split
from mlopsctl.stages.base import StageContext
from mlopsctl.stages.frames import examples, read_parquet, show_list, write_parquet

if TYPE_CHECKING:
    import pandas as pd


def run(ctx: StageContext) -> dict[str, Any]:
    frame = read_parquet(ctx, ctx.paths.snapshot, "the snapshot")
    split = ctx.usecase.data.split
    if split.method == "random":
        train, test = _random(ctx, frame, split)
    elif split.method == "time":
        train, test = _by_time(frame, split)
    else:
        raise StageFailedError(f"data.split.method: unknown method '{split.method}'")
    write_parquet(train.reset_index(drop=True), ctx.output(ctx.paths.train_set))
    write_parquet(test.reset_index(drop=True), ctx.output(ctx.paths.test_set))
    return {"n_train": len(train), "n_test": len(test)}


def _random(
    ctx: StageContext, frame: pd.DataFrame, split: Split
) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    goal = ctx.usecase.goal
    stratify = None
    if split.stratify:
        if goal.problem == "regression":
            raise StageFailedError(
                "data.split.stratify: a regression target cannot be stratified "
                "(set stratify: false)"
            )
        if goal.target not in frame.columns:
            raise StageFailedError(f"the target column '{goal.target}' is not in the data")
        stratify = frame[goal.target]
    try:
        train, test = train_test_split(
            frame, test_size=split.test_size, random_state=split.seed, stratify=stratify
        )
    except ValueError as exc:  # too few rows, a class with a single member, ...
        raise StageFailedError(
            f"data.split: cannot split {len(frame)} rows with test_size {split.test_size}"
            f"{' stratified on ' + repr(goal.target) if stratify is not None else ''}: {exc}"
        ) from exc
    return train, test


def _by_time(frame: pd.DataFrame, split: Split) -> tuple[pd.DataFrame, pd.DataFrame]:
    import pandas as pd

    col, cutoff_text = split.column, split.cutoff
    if not col or not cutoff_text:
        raise StageFailedError("data.split: method time needs a column and a cutoff")
    if col not in frame.columns:
        raise StageFailedError(f"data.split.column: the column '{col}' is not in the data")
    try:
        cutoff = pd.Timestamp(cutoff_text)
    except (ValueError, TypeError) as exc:
        raise StageFailedError(f"data.split.cutoff: '{cutoff_text}' is not a date") from exc
    series = frame[col]
    if pd.api.types.is_numeric_dtype(series.dtype):
        raise StageFailedError(
            f"data.split.column: '{col}' holds {series.dtype} numbers, not dates "
            "(write dates as text like 2025-01-01 or use a datetime column)"
        )
    times = _to_datetime(series)
    if times is None:
        bad = [v for v in series.dropna() if _not_a_date(v)]
        raise StageFailedError(
            f"data.split.column: '{col}' holds values that are not dates "
            f"(e.g. {show_list(examples(bad, 3))})"
        ) from None
    n_missing = int(times.isna().sum())
    if n_missing:
        raise StageFailedError(
            f"data.split.column: {n_missing} rows have no value in '{col}', "
            "so they belong to neither side of the cutoff"
        )
    # a naive side is read as UTC against an aware one
    aware_col = getattr(times.dt, "tz", None) is not None
    if aware_col and cutoff.tzinfo is None:
        cutoff = cutoff.tz_localize("UTC")
    elif not aware_col and cutoff.tzinfo is not None:
        cutoff = cutoff.tz_convert("UTC").tz_localize(None)
    before = (times < cutoff).to_numpy()
    train, test = frame[before], frame[~before]
    for name, part in (("training", train), ("test", test)):
        if part.empty:
            first, last = times.min(), times.max()
            raise StageFailedError(
                f"data.split: the cutoff {cutoff_text} leaves the {name} set empty "
                f"('{col}' runs from {first} to {last})"
            )
    return train, test


def _to_datetime(series: pd.Series) -> pd.Series | None:
    """*series* as datetimes (mixed UTC offsets: in UTC), or None when some value is no date."""
    import pandas as pd

    if series.dtype.kind == "M":
        return series
    for utc in (False, True):
        try:
            return pd.to_datetime(series, format="mixed", utc=utc)
        except (ValueError, TypeError, OverflowError):
            continue
    return None


def _not_a_date(value: Any) -> bool:
    import pandas as pd

    try:
        pd.Timestamp(value)
    except (ValueError, TypeError):
        return True
    return False
