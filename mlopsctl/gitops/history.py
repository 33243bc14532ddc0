"""`mlopsctl history NAME`: one row per commit that changed a use case's applied state.

The candidates are the commits that touched ``dvc.lock`` or ``reports/NAME/`` (``git log``);
a commit is kept when the use case's applied state there (its dvc.lock entries, metrics, gate
and monitoring verdicts: :mod:`mlopsctl.gitops.revision`) differs from its first parent's, so
an apply of another use case does not show up. Every state is read with two ``git cat-file``
processes in all. The ``Mlopsctl-*`` trailers of an apply commit (report/commit.py) say what
that apply did (its plan, its gate run); the version is the ``NAME@vX.Y.Z`` tag on the commit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsctl.compile.layout import UseCasePaths
from mlopsctl.errors import MlopsctlError, did_you_mean
from mlopsctl.gitops import versions
from mlopsctl.gitops.diff import ParamChange
from mlopsctl.gitops.revision import (
    LOCK_FILE,
    NAME,
    Git,
    UseCaseState,
    read_commits,
    read_worktree,
)

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass(frozen=True)
class HistoryRow:
    commit: str
    date: str  # ISO 8601, the author date
    author: str
    subject: str
    state: UseCaseState
    params_changed: tuple[ParamChange, ...]  # vs the previous (older) row; all, for the first
    versions: tuple[str, ...] = ()  # "v1.2.0", from the NAME@v1.2.0 tags on this commit
    trailers: Mapping[str, str] = field(default_factory=dict)  # plan, gate, data (this use case)

    @property
    def version(self) -> str | None:
        return self.versions[-1] if self.versions else None

    @property
    def apply(self) -> bool:
        """Made by `mlopsctl apply` (its subject or its Mlopsctl-Plan trailer says so)."""
        return self.subject.startswith("mlopsctl apply") or "plan" in self.trailers

    def to_dict(self) -> dict[str, Any]:
        s = self.state
        return {
            "commit": self.commit,
            "date": self.date,
            "author": self.author,
            "subject": self.subject,
            "apply": self.apply,
            "version": self.version,
            "versions": list(self.versions),
            "data": dict(s.data),
            "params_changed": [p.to_dict() for p in self.params_changed],
            "metrics": dict(s.metrics),
            "gate": s.gate.to_dict() if s.gate else None,
            "monitoring": s.monitoring.to_dict() if s.monitoring else None,
            "trailers": dict(self.trailers),
            "problems": list(s.problems),
        }


@dataclass(frozen=True)
class History:
    usecase: str
    rows: tuple[HistoryRow, ...]  # newest first

    def to_dict(self) -> dict[str, Any]:
        return {"usecase": self.usecase, "rows": [r.to_dict() for r in self.rows]}


def versions_by_commit(root: Path, name: str) -> dict[str, list[str]]:
    """Commit -> the versions of *name* registered on it (``v1.2.0``), lowest first.

    The registrations are GTO's annotated ``NAME@vX.Y.Z`` tags, read by
    :mod:`mlopsctl.gitops.versions` (the module that writes them).
    """
    found: dict[str, list[str]] = {}
    for v in versions.read_versions(root):  # sorted by use case, then SemVer
        if v.usecase == name:
            found.setdefault(v.commit, []).append(v.version)
    return found


def history_directory(directory: Path, name: str) -> History:
    """The applied states of use case *name* through HEAD's history, newest first."""
    from mlopsctl.spec.loader import find_project_root

    root = find_project_root(directory)
    if not NAME.fullmatch(name):  # it becomes a path and a tag pattern: never anything else
        _require(root, name, has_history=False)
    git = Git(root)
    if not git.exists("HEAD"):
        _require(root, name, has_history=False)
        return History(name, ())
    log = _log(git, name)
    parents = [p for c in log for p in c["parents"][:1]]
    commits = list(dict.fromkeys([c["commit"] for c in log] + parents))
    states = read_commits(git, commits, names=[name]) if commits else {}
    kept = []
    for c in log:
        state = states[c["commit"]].get(name)
        parent = c["parents"][0] if c["parents"] else None
        before = states[parent].get(name) if parent else UseCaseState(name)
        if state.present and state.key() != before.key():
            kept.append((c, state))
    if not kept:
        _require(root, name, has_history=False)
    tagged = versions_by_commit(git.root, name)
    rows = []
    for i, (c, state) in enumerate(kept):
        older = kept[i + 1][1] if i + 1 < len(kept) else UseCaseState(name)
        compared = (
            ParamChange(
                k, older.params.get(k), state.params.get(k), k in older.params, k in state.params
            )
            for k in sorted({*older.params, *state.params})
        )
        changed = tuple(p for p in compared if p.changed)
        rows.append(
            HistoryRow(
                commit=c["commit"],
                date=c["date"],
                author=c["author"],
                subject=c["subject"],
                state=state,
                params_changed=changed,
                versions=tuple(tagged.get(c["commit"], ())),
                trailers=_trailers(c["body"], name),
            )
        )
    return History(name, tuple(rows))


def _log(git: Git, name: str) -> list[dict[str, Any]]:
    out = git.run(
        "log",
        "-z",
        "--topo-order",
        "--format=%H%x1f%P%x1f%aI%x1f%an <%ae>%x1f%B",
        "HEAD",
        "--",
        LOCK_FILE,
        UseCasePaths(name).reports,
        what="read the history",
    )
    commits = []
    for record in out.decode("utf-8", "replace").split("\0"):
        parts = record.split("\x1f", 4)
        if len(parts) != 5 or not _SHA.match(parts[0]):
            continue  # not a record git wrote (a message can hold anything but NUL)
        sha, parents, date, author, body = parts
        commits.append(
            {
                "commit": sha,
                "parents": [p for p in parents.split() if _SHA.match(p)],
                "date": date,
                "author": author,
                "subject": body.strip().splitlines()[0] if body.strip() else "",
                "body": body,
            }
        )
    return commits


def _trailers(body: str, name: str) -> dict[str, str]:
    """This use case's Mlopsctl-* trailers: ``plan``, ``gate`` and ``data``."""
    out: dict[str, str] = {}
    for line in body.splitlines():
        key, sep, rest = line.partition(": ")
        if not sep or not key.startswith("Mlopsctl-"):
            continue
        if key == "Mlopsctl-Plan":
            out["plan"] = rest.strip()
        elif key in ("Mlopsctl-Gate", "Mlopsctl-Data") and rest.startswith(name + " "):
            out[key.removeprefix("Mlopsctl-").lower()] = rest[len(name) + 1 :].strip()
    return out


def _require(root: Path, name: str, has_history: bool) -> None:
    """An unknown use case is one error with a "did you mean"; a known one without history
    is not an error (it has no rows yet)."""
    known: list[str] = sorted(read_worktree(root).usecases)
    try:
        from mlopsctl.spec.loader import load_project

        known = sorted({*known, *(uc.name for uc in load_project(root).usecases)})
    except MlopsctlError:
        pass  # a spec that does not load: the names applied in the working tree
    if name in known or has_history:
        return
    hint = did_you_mean(name, known)
    raise MlopsctlError(
        f"unknown use case '{name}'"
        + (f" ({hint})" if hint else "")
        + (f"; the project has: {', '.join(known)}" if known else "")
    )
