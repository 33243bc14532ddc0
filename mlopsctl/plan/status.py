"""Desired (specs) vs applied (dvc.lock) vs the last gate verdict, per use case."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field, replace
from typing import Any

from mlopsctl.compile.layout import UseCasePaths
from mlopsctl.plan.api import Planned
from mlopsctl.plan.model import Action
from mlopsctl.plan.monitoring import last_verdict, read_breach
from mlopsctl.spec.paths import read_json_object


@dataclass(frozen=True)
class UseCaseStatus:
    name: str
    state: str  # in sync | out of sync | failing gate | never applied
    gate: str  # passed | failed | unknown
    reasons: tuple[str, ...] = ()  # why out of sync / why the gate failed
    metrics: dict[str, Any] = field(default_factory=dict)
    # tracked files whose objects the DVC remote lacks; None when no remote was checked
    not_pushed: tuple[str, ...] | None = None
    # deploy targets only: "in sync", "not running (...)", "gate failed, serving OLD", ...
    deployment: str | None = None
    deployed_version: str | None = None  # the bundle's manifest
    serving_version: str | None = None  # what a running server reports on /health
    # the last committed monitoring verdict: "ok", "breach", or None (never monitored)
    monitoring: str | None = None
    monitoring_reasons: tuple[str, ...] = ()
    # from the git tags (GTO format): the latest version, and stage -> the version assigned
    version: str | None = None
    deployed_to: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "usecase": self.name,
            "state": self.state,
            "gate": self.gate,
            "reasons": list(self.reasons),
            "metrics": self.metrics,
            "not_pushed": None if self.not_pushed is None else list(self.not_pushed),
            "deployment": self.deployment,
            "deployed_version": self.deployed_version,
            "serving_version": self.serving_version,
            "monitoring": self.monitoring,
            "version": self.version,
            "deployed_to": dict(sorted(self.deployed_to.items())),
        }


def with_push_state(
    planned: Planned, statuses: list[UseCaseStatus], missing: list[str]
) -> list[UseCaseStatus]:
    """*statuses* with the files of each use case that the remote lacks (*missing*)."""
    owners: dict[str, set[str]] = {}
    for st in planned.graph:
        for path in st.outs:
            owners.setdefault(path, set()).add(st.usecase)
    for uc in planned.project.usecases:
        for src in uc.spec.data.sources.values():
            if src.path:
                owners.setdefault(posixpath.normpath(src.path), set()).add(uc.name)
    return [
        replace(s, not_pushed=tuple(p for p in missing if s.name in owners.get(p, ())))
        for s in statuses
    ]


def usecase_status(planned: Planned) -> list[UseCaseStatus]:
    from mlopsctl.gitops.versions import (
        assignments_from,
        current_stages,
        latest,
        read_tags,
        versions_from,
    )

    root = planned.project.root
    tags = read_tags(root)
    versions = versions_from(tags)
    assignments = assignments_from(tags, versions)
    out = []
    for uc in planned.project.usecases:
        stages = [s for s in planned.plan.stages if s.usecase == uc.name]
        pending = [s for s in stages if s.action is not Action.SKIP]
        applied = any(planned.state.get(s.dvc_name) for s in stages)
        verdict = read_json_object(root, UseCasePaths(uc.name).gate)
        metrics = read_json_object(root, UseCasePaths(uc.name).metrics) or {}
        gate = "unknown" if verdict is None else ("passed" if verdict.get("passed") else "failed")
        reasons: list[str] = []
        if not applied:
            state = "never applied"
        elif gate == "failed":
            state = "failing gate"
            reasons = (
                [
                    f"{c['metric']} = {c.get('value')}, required {_bound(c)}"
                    for c in verdict.get("checks", [])
                    if not c.get("passed")
                ]
                if verdict
                else []
            )
        elif pending:
            state = "out of sync"
        else:
            state = "in sync"
        if pending and state != "never applied":
            reasons += [
                f"{s.name}: {s.reasons[0].message}" for s in pending if s.reasons and s.stale
            ] or [f"{len(pending)} stage(s) to apply"]
        paths = UseCasePaths(uc.name)
        breach = read_breach(root, paths)
        last = latest(versions, uc.name)
        out.append(
            UseCaseStatus(
                uc.name,
                state,
                gate,
                tuple(reasons),
                metrics,
                monitoring=last_verdict(root, paths),
                monitoring_reasons=breach.reasons if breach else (),
                version=last.version if last else None,
                deployed_to={
                    stage: a.version or a.commit[:10]
                    for stage, a in current_stages(assignments, uc.name).items()
                },
            )
        )
    return out


def _bound(check: dict[str, Any]) -> str:
    parts = []
    if check.get("min") is not None:
        parts.append(f">= {check['min']}")
    if check.get("max") is not None:
        parts.append(f"<= {check['max']}")
    return " and ".join(parts)
