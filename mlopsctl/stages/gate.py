"""gate: check the test metrics against goal.metrics; the verdict is always written.

A failed gate raises :class:`GateFailedError` (after writing the verdict), which stops the use
case before deploy.
"""

from __future__ import annotations

import json
import math
from typing import Any

from mlopsctl.errors import GateFailedError, StageFailedError
from mlopsctl.stages.base import StageContext, write_json


def run(ctx: StageContext) -> dict[str, Any]:
    goal = ctx.usecase.goal
    metrics = read_metrics(ctx)
    checks: list[dict[str, Any]] = []
    failures: list[str] = []
    for name in sorted(goal.metrics):
        bound = goal.metrics[name]
        value = metrics.get(name)
        passed = value is not None and bound.holds(value)
        checks.append(
            {"metric": name, "value": value, "min": bound.min, "max": bound.max, "passed": passed}
        )
        if value is None:
            failures.append(
                f"{name} is missing from {ctx.paths.metrics}, required {bound.describe()}"
            )
        elif not passed:
            failures.append(f"{name} = {value:.4f}, required {bound.describe()}")
    verdict = {"passed": not failures, "primary_metric": goal.primary, "checks": checks}
    write_json(ctx.output(ctx.paths.gate), verdict)
    if failures:
        lines = "\n".join(f"  {f}" for f in failures)
        raise GateFailedError(f"quality gate failed for use case '{ctx.usecase.name}':\n{lines}")
    return {"passed": True, **{c["metric"]: c["value"] for c in checks}}


def read_metrics(ctx: StageContext) -> dict[str, float]:
    """The numeric, finite entries of metrics.json."""
    rel = ctx.paths.metrics
    path = ctx.input(rel)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise StageFailedError(f"{rel} does not exist (run evaluate first)") from exc
    except (OSError, ValueError) as exc:
        raise StageFailedError(f"cannot read {rel}: {exc}") from exc
    if not isinstance(document, dict):
        raise StageFailedError(f"{rel} must hold a JSON object of metric -> value")
    return {
        str(k): float(v)
        for k, v in document.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
