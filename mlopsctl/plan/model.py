"""The Plan: a frozen value saying, per stage, what apply will do and why."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

PLAN_FORMAT_VERSION = 1


class Action(StrEnum):
    RUN = "run"
    RESTORE = "restore"  # outputs come back from the DVC cache; nothing is recomputed
    SKIP = "up-to-date"
    REMOVE = "remove"
    BLOCKED = "blocked"  # cannot run (a dependency is missing and nothing produces it)

    @property
    def symbol(self) -> str:
        return {"run": "~", "restore": "<", "up-to-date": " ", "remove": "-", "blocked": "!"}[
            self.value
        ]


@dataclass(frozen=True)
class Reason:
    """Why a stage is not up to date. ``kind`` is stable (JSON); ``message`` is for people."""

    kind: str  # new-usecase | new-stage | forced | cmd | env | param | dep | out-missing |
    #           out-modified | upstream | always-changed | removed | dep-missing
    message: str
    path: str = ""  # the param key path or file
    old: Any = None
    new: Any = None

    @property
    def direct(self) -> bool:
        """True unless the stage is stale only because something upstream runs."""
        return self.kind not in ("upstream", "upstream-blocked")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "message": self.message}
        if self.path:
            d["path"] = self.path
        if self.old is not None or self.new is not None:
            d["old"], d["new"] = self.old, self.new
        return d


@dataclass(frozen=True)
class StagePlan:
    """What apply will do with one stage (run, restore, skip, block, remove), and why."""

    id: str
    usecase: str
    name: str
    kind: str
    dvc_name: str
    action: Action
    reasons: tuple[Reason, ...] = ()
    note: str = ""  # e.g. the deploy target, shown after the reasons
    restore: Mapping[str, str] = field(default_factory=dict)  # out path -> md5 to restore
    # RUN only: an upstream stage runs first, so this stage's inputs are not known yet. If they
    # turn out to be what dvc.lock records, apply leaves it up to date; if they are inputs a run
    # in the run-cache saw, apply restores that run's outputs; otherwise it runs.
    conditional: bool = False
    runs_on: str = ""  # where apply runs it when not here: "dask tcp://host:8786" (infra)

    @property
    def stale(self) -> bool:
        """Stale on its own account (what `dvc status` reports), not only through upstream."""
        return any(r.direct for r in self.reasons)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "usecase": self.usecase,
            "stage": self.name,
            "kind": self.kind,
            "dvc_stage": self.dvc_name,
            "action": self.action.value,
            "reasons": [r.to_dict() for r in self.reasons],
        }
        if self.restore:
            d["restore"] = dict(sorted(self.restore.items()))
        if self.conditional:
            d["conditional"] = True
        if self.runs_on:
            d["runs_on"] = self.runs_on
        return d


@dataclass(frozen=True)
class PlanInputs:
    """Everything a plan was computed from; apply refuses a saved plan when any of it moved."""

    lock_md5: str
    spec_md5: Mapping[str, str]  # spec files -> md5
    data_md5: Mapping[str, str]  # workspace deps that no stage produces -> md5 ("" if missing)
    environment: Mapping[str, str]
    mlopsctl_version: str
    force: bool = False
    usecases: tuple[str, ...] = ()  # the -u selection ("" = all)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lock_md5": self.lock_md5,
            "spec_md5": dict(sorted(self.spec_md5.items())),
            "data_md5": dict(sorted(self.data_md5.items())),
            "environment": dict(sorted(self.environment.items())),
            "mlopsctl_version": self.mlopsctl_version,
            "force": self.force,
            "usecases": list(self.usecases),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PlanInputs:
        return cls(
            lock_md5=d["lock_md5"],
            spec_md5=dict(d["spec_md5"]),
            data_md5=dict(d["data_md5"]),
            environment=dict(d["environment"]),
            mlopsctl_version=d["mlopsctl_version"],
            force=bool(d.get("force", False)),
            usecases=tuple(d.get("usecases", ())),
        )


@dataclass(frozen=True)
class SourcePlan:
    """A DVC-tracked data source whose file no longer matches its ``.dvc``: apply records it."""

    path: str
    old: str  # md5 its .dvc file names
    new: str  # md5 of the file on disk

    @property
    def message(self) -> str:
        return (
            f"{self.path} changed ({self.old[:7]} -> {self.new[:7]}): recorded in {self.path}.dvc"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "old": self.old, "new": self.new}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SourcePlan:
        return cls(str(d["path"]), str(d["old"]), str(d["new"]))


@dataclass(frozen=True)
class RemotePlan:
    """A use case whose DVC-cached outputs and data go to another DVC remote (``infra.remote``)
    than the one dvc.yaml names now: apply names it there, pushes, and commits; nothing runs."""

    usecase: str
    old: str  # the remote dvc.yaml names on its outputs now; "" = the project's
    new: str  # the remote its spec names; "" = the project's

    @property
    def message(self) -> str:
        def remote(name: str) -> str:
            return f"DVC remote '{name}'" if name else "the project's DVC remote"

        return (
            f"{self.usecase}: artifacts and data go to {remote(self.new)}, not "
            f"{remote(self.old)}: apply names it in dvc.yaml and the .dvc files, pushes them "
            "there and commits (no stage runs for this)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"usecase": self.usecase, "old": self.old, "new": self.new}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RemotePlan:
        return cls(str(d["usecase"]), str(d["old"]), str(d["new"]))


@dataclass(frozen=True)
class Plan:
    """Every stage's plan in dependency order, and the data sources apply will record."""

    stages: tuple[StagePlan, ...]
    inputs: PlanInputs
    sources: tuple[SourcePlan, ...] = ()  # tracked data sources to record (their .dvc files)
    remotes: tuple[RemotePlan, ...] = ()  # use cases whose artifacts move to another remote

    def by_action(self, action: Action) -> tuple[StagePlan, ...]:
        return tuple(s for s in self.stages if s.action is action)

    @property
    def to_apply(self) -> tuple[StagePlan, ...]:
        return tuple(
            s for s in self.stages if s.action in (Action.RUN, Action.RESTORE, Action.REMOVE)
        )

    @property
    def has_changes(self) -> bool:
        return (
            bool(self.to_apply)
            or bool(self.by_action(Action.BLOCKED))
            or bool(self.sources)
            or bool(self.remotes)
        )

    def counts(self) -> dict[str, int]:
        return {a.value: len(self.by_action(a)) for a in Action}

    def usecases(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.usecase for s in self.stages))

    @property
    def id(self) -> str:
        """A short content hash of the plan (the ``Mlopsctl-Plan`` commit trailer)."""
        blob = json.dumps(self.to_dict(include_id=False), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def to_dict(self, include_id: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format_version": PLAN_FORMAT_VERSION,
            "summary": self.counts(),
            "has_changes": self.has_changes,
            "stages": [s.to_dict() for s in self.stages],
            "sources": [s.to_dict() for s in self.sources],
            "inputs": self.inputs.to_dict(),
        }
        if self.remotes:  # only then: the ids of plans without any stay what they were
            d["remotes"] = [r.to_dict() for r in self.remotes]
        if include_id:
            d["plan_id"] = self.id
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Plan:
        stages = tuple(
            StagePlan(
                id=s["id"],
                usecase=s["usecase"],
                name=s["stage"],
                kind=s["kind"],
                dvc_name=s["dvc_stage"],
                action=Action(s["action"]),
                reasons=tuple(
                    Reason(r["kind"], r["message"], r.get("path", ""), r.get("old"), r.get("new"))
                    for r in s["reasons"]
                ),
                restore=dict(s.get("restore", {})),
                conditional=bool(s.get("conditional", False)),
                runs_on=str(s.get("runs_on", "")),
            )
            for s in d["stages"]
        )
        sources = tuple(SourcePlan.from_dict(x) for x in d.get("sources", ()))
        remotes = tuple(RemotePlan.from_dict(x) for x in d.get("remotes", ()))
        return cls(
            stages=stages,
            inputs=PlanInputs.from_dict(d["inputs"]),
            sources=sources,
            remotes=remotes,
        )
