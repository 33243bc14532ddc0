"""validate: the data checks of ``data.checks`` on the snapshot, before anything is trained.

The report (every rule, passed or not, with counts and examples) is always written; any
violation then raises :class:`DataCheckError`, one line per violation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlopsctl.errors import DataCheckError
from mlopsctl.spec.model import Bound
from mlopsctl.stages.base import StageContext, write_json
from mlopsctl.stages.frames import examples, jsonable, number, read_parquet, show_list

if TYPE_CHECKING:
    import pandas as pd


def run(ctx: StageContext) -> dict[str, Any]:
    frame = read_parquet(ctx, ctx.paths.snapshot, "the snapshot")
    rules, violations = check(ctx, frame)
    report = {
        "passed": not violations,
        "rows": len(frame),
        "columns": len(frame.columns),
        "rules": rules,
        "violations": violations,
    }
    write_json(ctx.output(ctx.paths.validation), report)
    if violations:
        count = len(violations)
        lines = "\n".join(f"  {v}" for v in violations)
        raise DataCheckError(
            f"data checks failed for use case '{ctx.usecase.name}' "
            f"({count} violation{'s' if count > 1 else ''}, report in {ctx.paths.validation}):"
            f"\n{lines}"
        )
    return {"passed": True, "rows": len(frame), "rules": len(rules)}


def check(ctx: StageContext, frame: pd.DataFrame) -> tuple[list[dict[str, Any]], list[str]]:
    """Every rule's result (JSON-safe) and the violations as messages."""
    usecase = ctx.usecase
    checks = usecase.data.checks
    columns = [str(c) for c in frame.columns]
    rules: list[dict[str, Any]] = []
    violations: list[str] = []

    def add(rule: dict[str, Any], message: str | None) -> None:
        rule["passed"] = message is None
        rules.append(rule)
        if message is not None:
            violations.append(message)

    # the target: present, and labelled on every row
    target = usecase.goal.target
    if target not in columns:
        add(
            {"rule": "target", "column": target, "present": False, "missing": None},
            f"{target}: the target column is not in the data (columns: {_columns(columns)})",
        )
    else:
        n_missing = int(frame[target].isna().sum())
        add(
            {"rule": "target", "column": target, "present": True, "missing": n_missing},
            f"{target}: {n_missing} rows have no target value" if n_missing else None,
        )

    # data.features: every listed column exists
    features = usecase.data.features
    if features is not None:
        listed = list(dict.fromkeys([*features.numeric, *features.categorical, *features.drop]))
        absent = [c for c in listed if c not in columns]
        add(
            {"rule": "features", "columns": listed, "absent": absent},
            f"data.features lists columns that are not in the data: {', '.join(absent)}"
            if absent
            else None,
        )

    if checks.min_rows is not None:
        n = len(frame)
        add(
            {"rule": "min_rows", "min": checks.min_rows, "rows": n},
            f"min_rows: the data has {n} rows, at least {checks.min_rows} required"
            if n < checks.min_rows
            else None,
        )

    if checks.max_missing is not None:
        limit = checks.max_missing
        fractions = {c: float(frame[c].isna().mean()) if len(frame) else 0.0 for c in columns}
        offending = {c: round(f, 6) for c, f in fractions.items() if f > limit}
        violations_before = len(violations)
        for col, fraction in offending.items():
            count = int(frame[col].isna().sum())
            violations.append(
                f"{col}: {fraction:.1%} missing ({count} of {len(frame)} rows), "
                f"at most {limit:.1%} allowed"
            )
        rules.append(
            {
                "rule": "max_missing",
                "max": limit,
                "offending": offending,
                "passed": len(violations) == violations_before,
            }
        )

    for col in checks.unique:
        if col not in columns:
            add({"rule": "unique", "column": col, "present": False}, _absent(col, columns))
            continue
        values = frame[col].dropna()
        duplicated = values[values.duplicated(keep="first")]
        count = len(duplicated)
        sample = examples(duplicated)
        add(
            {
                "rule": "unique",
                "column": col,
                "present": True,
                "duplicates": count,
                "examples": sample,
            },
            f"{col}: {count} duplicate values (e.g. {show_list(sample)})" if count else None,
        )

    for col, bound in checks.ranges.items():
        rule: dict[str, Any] = {"rule": "range", "column": col, "min": bound.min, "max": bound.max}
        if col not in columns:
            add({**rule, "present": False}, _absent(col, columns))
            continue
        rule["present"] = True
        add(rule, _check_range(frame[col], col, bound, rule))

    for col, allowed in checks.allowed.items():
        rule = {"rule": "allowed", "column": col, "values": jsonable(list(allowed))}
        if col not in columns:
            add({**rule, "present": False}, _absent(col, columns))
            continue
        rule["present"] = True
        add(rule, _check_allowed(frame[col], col, allowed, rule))

    return rules, violations


def _check_range(series: pd.Series, col: str, bound: Bound, rule: dict[str, Any]) -> str | None:
    import pandas as pd

    values = series.dropna()
    if pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(values.dtype):
        rule.update(outside=None, examples=examples(values, 3))
        return f"{col}: a range needs a numeric column, but it holds {series.dtype} values"
    mask = pd.Series(False, index=values.index)
    if bound.min is not None:
        mask |= values < bound.min
    if bound.max is not None:
        mask |= values > bound.max
    bad = values[mask]
    sample = examples(bad)
    rule.update(outside=len(bad), examples=sample)
    if bad.empty:
        return None
    if bound.min is not None and bound.max is not None:
        where = f"outside [{number(bound.min)}, {number(bound.max)}]"
    elif bound.min is not None:
        where = f"below {number(bound.min)}"
    else:
        where = f"above {number(bound.max)}"  # type: ignore[arg-type]
    return f"{col}: {len(bad)} values {where} (e.g. {show_list(sample)})"


def _check_allowed(
    series: pd.Series, col: str, allowed: tuple[Any, ...], rule: dict[str, Any]
) -> str | None:
    import pandas as pd

    values = series.dropna()
    ok = values.isin(list(allowed))
    if pd.api.types.is_object_dtype(values.dtype) or pd.api.types.is_string_dtype(values.dtype):
        # a text column against numbers written in YAML (zip codes, grades): compare as text
        ok |= values.astype(str).isin([str(a) for a in allowed if not isinstance(a, bool)])
    bad = values[~ok]
    sample = examples(bad)
    rule.update(not_allowed=len(bad), examples=sample)
    if bad.empty:
        return None
    return (
        f"{col}: {len(bad)} values not in the allowed set {show_list(list(allowed))} "
        f"(e.g. {show_list(sample)})"
    )


def _absent(col: str, columns: list[str]) -> str:
    return f"{col}: the column is not in the data (columns: {_columns(columns)})"


def _columns(columns: list[str], limit: int = 20) -> str:
    shown = ", ".join(columns[:limit])
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > limit else "")
