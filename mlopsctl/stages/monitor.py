"""monitor: check the current batch (``monitoring.current``) against the training reference.

Reads the reference profile train wrote and the model (for prediction drift and performance),
runs :func:`mlopsctl.monitor.check.check`, and writes ``reports/<name>/monitoring/``: the JSON
verdict, a self-contained HTML page, a markdown summary, and ``breach.json``, the small record
that `plan` (``on_breach: retrain``) and `status` read. ``on_breach``:

- ``alert``: the breach is recorded and shown by apply; the stage passes;
- ``fail``: the stage fails after writing its reports (apply exits 1);
- ``retrain``: the breach is recorded; the next plan re-runs train with it as the reason.

The same check runs on demand through `mlopsctl monitor` (:func:`check_usecase`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlopsctl.compile.layout import MONITORING_BREACH, UseCasePaths
from mlopsctl.errors import MlopsctlError, StageFailedError
from mlopsctl.plan.hashing import file_md5
from mlopsctl.spec.model import UseCase
from mlopsctl.stages.base import StageContext, write_json
from mlopsctl.stages.modelio import load_model

if TYPE_CHECKING:
    from mlopsctl.monitor.check import MonitorResult


class MonitoringBreachError(StageFailedError):
    """A monitoring threshold was breached with ``on_breach: fail`` (the reports still land)."""

    outputs_valid = True


def run(ctx: StageContext) -> dict[str, Any]:
    from mlopsctl.monitor import render
    from mlopsctl.stages.ingest import read_source

    usecase = ctx.usecase
    mon = usecase.monitoring
    if mon is None:  # compile adds the stage only with monitoring:
        raise StageFailedError(f"use case '{usecase.name}' has no monitoring section")
    batch: Any
    if mon.current.path is not None:
        batch = ctx.input(mon.current.path)
        if not batch.is_file():
            raise StageFailedError(f"monitoring.current: file {mon.current.path} does not exist")
        batch_id = file_md5(batch)
    else:  # a source that is not a file (sql, a bundled data set): read it whole
        batch = read_source(ctx, "monitoring.current", mon.current)
        batch_id = ""
    try:
        result = check_usecase(ctx.root, usecase, batch, ctx.allowed_estimator_modules, ctx.paths)
    except MlopsctlError as exc:
        if isinstance(exc, StageFailedError):
            raise
        raise StageFailedError(exc.message) from exc

    out_dir = ctx.output(ctx.paths.monitoring_file(MONITORING_BREACH)).parent
    render.write_reports(out_dir, [result])
    text = render.render_json([result])
    reasons = breach_reasons(result)
    record = {
        "breach": result.breach,
        # one retraining per batch: the id of a breach is the batch it was found in
        "id": batch_id or hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(),
        "on_breach": mon.on_breach,
        "reasons": reasons,
        "current": mon.current.path,
        "model_md5": file_md5(ctx.input(ctx.paths.model)),
        "rows": result.rows,
    }
    write_json(ctx.output(ctx.paths.monitoring_file(MONITORING_BREACH)), record)

    summary: dict[str, Any] = {"rows": result.rows, "breach": result.breach}
    if not result.breach:
        return summary
    listed = "; ".join(reasons)
    if mon.on_breach == "fail":
        lines = "\n".join(f"  {r}" for r in reasons)
        raise MonitoringBreachError(
            f"monitoring breach for use case '{usecase.name}' (on_breach: fail; report in "
            f"{ctx.paths.monitoring}/):\n{lines}"
        )
    if mon.on_breach == "retrain":
        summary["alert"] = f"monitoring breach (the next plan retrains): {listed}"
    else:
        summary["alert"] = f"monitoring breach: {listed}"
    return summary


def check_usecase(
    root: Path,
    usecase: UseCase,
    batch: Any,
    allowed_modules: tuple[str, ...],
    paths: UseCasePaths | None = None,
) -> MonitorResult:
    """Check *batch* (a path or a frame) against the use case's reference profile and model."""
    from mlopsctl.monitor import check, profile

    paths = paths or UseCasePaths(usecase.name)
    profile_path = root / paths.reference_profile
    try:
        reference = profile.loads(profile_path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise StageFailedError(
            f"{paths.reference_profile} does not exist (apply the use case's train stage first)"
        ) from exc
    except (OSError, ValueError) as exc:
        raise StageFailedError(f"cannot read {paths.reference_profile}: {exc}") from exc
    model_path = root / paths.model
    if not model_path.is_file():
        raise StageFailedError(f"{paths.model} does not exist (apply train first)")
    model = load_model(model_path, usecase.model.estimator, allowed_modules)
    settings = check.Settings.from_usecase(usecase)
    return check.check(usecase.name, reference, batch, settings, check.model_predictor(model))


def breach_reasons(result: MonitorResult) -> list[str]:
    """Each broken threshold in one line: ``drift: income PSI 1.32 > 0.20``, a problem, or
    ``performance: roc_auc 0.7100 < 0.75`` (the same lines `mlopsctl monitor` prints)."""
    from mlopsctl.plan.monitoring import reasons

    return reasons(result.to_json())
