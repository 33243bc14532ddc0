"""Saved plans: a self-contained JSON file that apply accepts only while it is current."""

from __future__ import annotations

import json
from pathlib import Path

from mlopsctl.errors import MlopsctlError, PlanStaleError
from mlopsctl.fsutil import atomic_write
from mlopsctl.plan.model import PLAN_FORMAT_VERSION, Plan

PLAN_KIND = "mlopsctl/plan"


def save_plan(plan: Plan, path: Path) -> None:
    doc = {"kind": PLAN_KIND, **plan.to_dict()}
    text = json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write(path, text)


def load_plan(path: Path) -> Plan:
    try:
        doc = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise MlopsctlError(f"plan file {path} not found") from exc
    except (OSError, ValueError) as exc:
        raise MlopsctlError(
            f"{path} is not a plan file saved by `mlopsctl plan -o`: {exc}"
        ) from exc
    if not isinstance(doc, dict) or doc.get("kind") != PLAN_KIND:
        raise MlopsctlError(f"{path} is not a plan file saved by `mlopsctl plan -o`")
    if doc.get("format_version") != PLAN_FORMAT_VERSION:
        raise MlopsctlError(
            f"{path} has plan format {doc.get('format_version')}; "
            f"this mlopsctl reads {PLAN_FORMAT_VERSION}"
        )
    try:
        return Plan.from_dict(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise MlopsctlError(f"{path} is a damaged plan file: {exc}") from exc


def check_current(saved: Plan, current: Plan) -> None:
    """Raise PlanStaleError naming what moved since *saved* was computed."""
    a, b = saved.inputs, current.inputs
    moved: list[str] = []
    if a.mlopsctl_version != b.mlopsctl_version:
        moved.append(f"mlopsctl {a.mlopsctl_version} -> {b.mlopsctl_version}")
    for k in sorted(set(a.environment) | set(b.environment)):
        if a.environment.get(k) != b.environment.get(k):
            moved.append(f"{k} {a.environment.get(k)} -> {b.environment.get(k)}")
    for label, x, y in (("", a.spec_md5, b.spec_md5), ("", a.data_md5, b.data_md5)):
        del label
        for k in sorted(set(x) | set(y)):
            if x.get(k) != y.get(k):
                moved.append(f"{k} changed")
    if a.lock_md5 != b.lock_md5:
        moved.append("dvc.lock changed (another apply ran)")
    if moved:
        raise PlanStaleError(
            "plan is stale: " + "; ".join(moved) + " since the plan. Run `mlopsctl plan` again."
        )
    if saved.id != current.id:  # same inputs should give the same plan; be safe
        raise PlanStaleError("plan is stale: the workspace no longer gives the same plan")
