"""The committed monitoring verdict of a use case, as plan and status read it (plain JSON).

The monitor stage writes ``reports/<name>/monitoring/breach.json`` next to its reports:
``{"breach": bool, "id": ..., "on_breach": ..., "reasons": [...], "current_md5": ...,
"model_md5": ...}``. With ``on_breach: retrain`` the planner schedules train while a breach is
recorded that the last training has not answered: train copies the breach's ``id`` into
training.json (``monitoring_breach``), which marks it handled. The id is the current batch's
md5, so one batch causes at most one retraining, even when the retrained model still breaches.

No pandas, no numpy: this runs on the `plan` and `status` paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsctl.compile.layout import MONITORING_BREACH, UseCasePaths
from mlopsctl.spec.paths import read_json_object

#: records larger than this are not ours: ignored rather than read
_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Breach:
    """A monitoring verdict that asks for a retrain, as the last monitor run committed it."""

    id: str
    on_breach: str
    reasons: tuple[str, ...]

    @property
    def summary(self) -> str:
        """The reasons on one line: ``drift: income PSI 1.32 > 0.20; missing column: age``."""
        return "; ".join(self.reasons) if self.reasons else "monitoring breach"


def read_verdict(root: Path, paths: UseCasePaths) -> dict[str, Any] | None:
    """The breach record the monitor stage committed, or None (never monitored)."""
    return read_json_object(root, paths.monitoring_file(MONITORING_BREACH), _MAX_BYTES)


def read_breach(root: Path, paths: UseCasePaths) -> Breach | None:
    """The recorded breach, or None when the last check held (or there was none)."""
    doc = read_verdict(root, paths)
    if doc is None or doc.get("breach") is not True or not isinstance(doc.get("id"), str):
        return None
    reasons = doc.get("reasons")
    listed = tuple(str(r) for r in reasons) if isinstance(reasons, list) else ()
    return Breach(str(doc["id"]), str(doc.get("on_breach", "")), listed)


def pending_retrain(root: Path, paths: UseCasePaths) -> Breach | None:
    """A recorded breach that the last training did not answer (see the module docstring)."""
    breach = read_breach(root, paths)
    if breach is None:
        return None
    training = read_json_object(root, paths.training, _MAX_BYTES) or {}
    if training.get("monitoring_breach") == breach.id:
        return None
    return breach


def last_verdict(root: Path, paths: UseCasePaths) -> str | None:
    """``"breach"``, ``"ok"``, or None when the use case has no committed monitoring verdict."""
    doc = read_verdict(root, paths)
    if doc is None or not isinstance(doc.get("breach"), bool):
        return None
    return "breach" if doc["breach"] else "ok"


def reasons(result: Mapping[str, Any]) -> list[str]:
    """Each broken threshold of one use case's result, one line each."""
    out = []
    pred = result.get("prediction")
    for f in [*result.get("features", []), *([pred] if pred else [])]:
        if not f.get("drifted"):
            continue
        value = "n/a" if f.get("value") is None else f"{f['value']:.2f}"
        op = "<" if f.get("statistic") == "chisquare" else ">"
        out.append(
            f"drift: {f['name']} {str(f.get('statistic')).upper()} {value} {op} "
            f"{f['threshold']:.2f}"
        )
    out += list(result.get("problems", []))
    for name, m in sorted(result.get("performance", {}).items()):
        if m.get("holds"):
            continue
        if m.get("value") is None:
            out.append(f"performance: {name} undefined on the batch")
        elif m.get("min") is not None and m["value"] < m["min"]:
            out.append(f"performance: {name} {m['value']:.4f} < {m['min']}")
        else:
            out.append(f"performance: {name} {m['value']:.4f} > {m.get('max')}")
    return out
