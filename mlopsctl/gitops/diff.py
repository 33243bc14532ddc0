"""`mlopsctl diff`: the params and metrics of each use case at two revisions, compared.

Like ``dvc params diff`` and ``dvc metrics diff`` together, on the applied states (see
:mod:`mlopsctl.gitops.revision`): old, new, the change (and its percentage for metrics), which
way a metric moved and, when the goal bounds it on one side, whether that way is better.
The pull-request comment shows the same comparison between the base branch and the branch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsctl.errors import did_you_mean
from mlopsctl.gitops.revision import (
    Git,
    RevisionError,
    RevisionState,
    UseCaseState,
    read_revision,
    read_worktree,
)


@dataclass(frozen=True)
class ParamChange:
    path: str
    old: Any
    new: Any
    in_old: bool = True  # False: the param is new
    in_new: bool = True  # False: the param was dropped

    @property
    def changed(self) -> bool:
        return (self.in_old, self.in_new) != (True, True) or _differs(self.old, self.new)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "old": self.old, "new": self.new}
        if not self.in_old:
            d["added"] = True
        if not self.in_new:
            d["removed"] = True
        return d


@dataclass(frozen=True)
class MetricChange:
    name: str
    old: float | None
    new: float | None
    better_when: str = ""  # "higher" | "lower" | "" (the goal does not say)

    @property
    def delta(self) -> float | None:
        if self.old is None or self.new is None:
            return None
        if math.isclose(self.old, self.new, rel_tol=1e-9, abs_tol=1e-12):
            return 0  # the same score up to rounding (a float sum in another order)
        return self.new - self.old

    @property
    def pct(self) -> float | None:
        """The change in percent of the old value (None when the old value is 0 or absent)."""
        delta = self.delta
        if delta is None or not self.old:
            return None
        return delta / abs(self.old) * 100.0

    @property
    def direction(self) -> str:
        """``up``, ``down``, or ``""`` (unchanged, or one side missing)."""
        delta = self.delta
        return "" if not delta else ("up" if delta > 0 else "down")

    @property
    def better(self) -> bool | None:
        """True when the metric moved the way the goal prefers; None when unknown or unmoved."""
        if not self.direction or not self.better_when:
            return None
        return (self.direction == "up") == (self.better_when == "higher")

    @property
    def changed(self) -> bool:
        return self.delta != 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "old": self.old,
            "new": self.new,
            "delta": self.delta,
            "pct": self.pct,
            "direction": self.direction or None,
            "better": self.better,
        }


@dataclass(frozen=True)
class UseCaseDiff:
    name: str
    old: UseCaseState
    new: UseCaseState
    params: tuple[ParamChange, ...]
    metrics: tuple[MetricChange, ...]

    @property
    def status(self) -> str:
        """``added``, ``removed``, ``changed`` (its applied state moved), ``unchanged``, or
        ``absent`` (applied on neither side)."""
        if not self.old.present and not self.new.present:
            return "absent"
        if not self.old.present:
            return "added"
        if not self.new.present:
            return "removed"
        return "changed" if self.old.key() != self.new.key() else "unchanged"

    @property
    def data_changes(self) -> dict[str, tuple[str | None, str | None]]:
        paths = sorted({*self.old.data, *self.new.data})
        return {
            p: (self.old.data.get(p), self.new.data.get(p))
            for p in paths
            if self.old.data.get(p) != self.new.data.get(p)
        }

    def to_dict(self, include_all: bool = False) -> dict[str, Any]:
        def verdict(v: Any) -> str | None:
            return None if v is None else str(v.word)

        return {
            "usecase": self.name,
            "status": self.status,
            "params": [p.to_dict() for p in self.params if include_all or p.changed],
            "metrics": [m.to_dict() for m in self.metrics if include_all or m.changed],
            "gate": {"old": verdict(self.old.gate), "new": verdict(self.new.gate)},
            "monitoring": {
                "old": verdict(self.old.monitoring),
                "new": verdict(self.new.monitoring),
            },
            "data": [
                {"path": p, "old": old, "new": new} for p, (old, new) in self.data_changes.items()
            ],
            "problems": {"old": list(self.old.problems), "new": list(self.new.problems)},
        }


@dataclass(frozen=True)
class Diff:
    old: RevisionState
    new: RevisionState
    usecases: tuple[UseCaseDiff, ...]

    def to_dict(self, include_all: bool = False) -> dict[str, Any]:
        def side(s: RevisionState) -> dict[str, Any]:
            return {"rev": s.label, "commit": s.commit, "problems": list(s.problems)}

        return {
            "old": side(self.old),
            "new": side(self.new),
            "usecases": [u.to_dict(include_all) for u in self.usecases],
        }


def _differs(a: Any, b: Any) -> bool:
    # 1 and 1.0 are the same param value; True and 1 are not
    return (type(a) is not type(b) and not _numbers(a, b)) or a != b


def _numbers(a: Any, b: Any) -> bool:
    return all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))


def compare(
    old: RevisionState,
    new: RevisionState,
    names: Sequence[str] = (),
    goals: Mapping[str, Mapping[str, str]] | None = None,
) -> Diff:
    """Every use case of either side (or *names*), compared.

    *goals* gives, per use case, which way each metric is better (``higher``/``lower``); by
    default the gate's bounds at the new side, then at the old side.
    """
    selected = list(names) or sorted({*old.usecases, *new.usecases})
    out = []
    for name in selected:
        a, b = old.get(name), new.get(name)
        directions = {**a.goal_directions(), **b.goal_directions(), **(goals or {}).get(name, {})}
        params = tuple(
            ParamChange(p, a.params.get(p), b.params.get(p), p in a.params, p in b.params)
            for p in sorted({*a.params, *b.params})
        )
        metrics = tuple(
            MetricChange(m, a.metrics.get(m), b.metrics.get(m), directions.get(m, ""))
            for m in _metric_order(a, b)
        )
        out.append(UseCaseDiff(name, a, b, params, metrics))
    return Diff(old, new, tuple(out))


def _metric_order(a: UseCaseState, b: UseCaseState) -> list[str]:
    """Goal metrics first (in the gate's order), then the others by name."""
    goal = [c.metric for s in (b, a) if s.gate for c in s.gate.checks]
    rest = sorted({*a.metrics, *b.metrics})
    return [m for m in dict.fromkeys([*goal, *rest]) if m in a.metrics or m in b.metrics]


def diff_directory(
    directory: Path,
    a_rev: str = "HEAD",
    b_rev: str | None = None,
    usecases: Sequence[str] = (),
) -> Diff:
    """The applied states at *a_rev* and at *b_rev* (default: the working tree), compared."""
    from mlopsctl.spec.loader import find_project_root

    root = find_project_root(directory)
    git = Git(root)
    old = read_revision(root, a_rev, git)
    new = read_worktree(root) if b_rev is None else read_revision(root, b_rev, git)
    known = sorted({*old.usecases, *new.usecases})
    for name in usecases:
        if name not in known:
            hint = did_you_mean(name, known)
            raise RevisionError(
                f"unknown use case '{name}'"
                + (f" ({hint})" if hint else "")
                + (f"; applied ones: {', '.join(known)}" if known else "; nothing is applied")
            )
    return compare(old, new, list(dict.fromkeys(usecases)))
