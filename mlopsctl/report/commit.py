"""The apply commit: which files it holds, and a message that says exactly what this apply did.

The message is derived from facts of this apply only (the outcomes of its stages, the stages it
recovered from an interrupted apply, the data sources it recorded): never from files an earlier
apply left on disk. A gate that did not run in this apply is reported as not reached or up to
date, never with numbers it did not compute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsctl.compile.layout import UseCasePaths
from mlopsctl.plan.hashing import HashCache
from mlopsctl.plan.model import Plan
from mlopsctl.results import Outcome
from mlopsctl.spec.paths import read_json_object

#: the order stage statuses are listed in a commit body
_STATUSES = ("ran", "restored", "recovered", "removed", "failed", "blocked")


@dataclass(frozen=True)
class ApplyFacts:
    """What one apply did, as the commit message reports it."""

    plan: Plan
    outcomes: tuple[Outcome, ...]
    recovered: tuple[str, ...] = ()  # dvc stage names recorded from an interrupted apply
    sources_updated: tuple[str, ...] = ()
    sources_tracked: tuple[str, ...] = ()
    wrote_dvc_yaml: bool = False
    changed_files: tuple[str, ...] = ()  # what the commit holds, when no stage ran


def commit_paths(root: Path, planned: Any, spec_files: Sequence[str]) -> list[str]:
    paths = ["dvc.yaml", "dvc.lock", ".gitignore", ".dvc/config", ".dvc/.gitignore", ".dvcignore"]
    paths += spec_files
    for uc in planned.project.usecases:
        lay = UseCasePaths(uc.name)
        paths += [lay.reports, f"{lay.artifacts}/.gitignore"]
        for src in uc.spec.data.sources.values():
            if src.path and (root / f"{src.path}.dvc").exists():
                paths.append(f"{src.path}.dvc")
                if "/" in src.path:
                    paths.append(f"{src.path.rsplit('/', 1)[0]}/.gitignore")
        for cs in uc.spec.stages:
            paths += list(cs.metrics)
            paths += [f"{o.rsplit('/', 1)[0]}/.gitignore" for o in cs.outs if "/" in o]
    for sp in planned.plan.stages:  # reports of removed use cases are deleted in the commit
        paths.append(UseCasePaths(sp.usecase).reports)
    return list(dict.fromkeys(paths))


def commit_message(root: Path, planned: Any, facts: ApplyFacts) -> str:
    by_uc: dict[str, list[Outcome]] = {}
    for o in facts.outcomes:
        by_uc.setdefault(o.stage_id.split("/", 1)[0], []).append(o)
    touched = [uc for uc, os_ in by_uc.items() if any(o.status != "up-to-date" for o in os_)]
    sources = [*facts.sources_updated, *facts.sources_tracked]
    if touched:
        subject = "mlopsctl apply: " + ", ".join(touched)
    elif sources:
        subject = "mlopsctl apply: record data " + ", ".join(sources)
    elif facts.plan.remotes:
        moved = ", ".join(
            f"{r.usecase} to {r.new or 'the project remote'}" for r in facts.plan.remotes
        )
        subject = f"mlopsctl apply: move {moved} {_IDLE_MARK}"
    elif facts.wrote_dvc_yaml:
        subject = f"mlopsctl apply: regenerate dvc.yaml {_IDLE_MARK}"
    else:
        subject = f"mlopsctl apply: commit project files {_IDLE_MARK}"
    body: list[str] = []
    trailers = [f"Mlopsctl-Plan: {facts.plan.id}"]
    hc = HashCache(root)
    for uc in touched:
        outcomes = {o.stage_id.split("/", 1)[1]: o for o in by_uc[uc]}
        parts = []
        for status in _STATUSES:
            names = [name for name, o in outcomes.items() if o.status == status]
            if names:
                parts.append(f"{status}: {', '.join(names)}")
        body.append(f"{uc}: " + "; ".join(parts))
        ingest = outcomes.get("ingest")
        if ingest is None or ingest.status not in ("failed", "blocked"):
            snap = UseCasePaths(uc).snapshot
            md5 = hc.md5(snap)
            if md5:
                trailers.append(f"Mlopsctl-Data: {uc} {snap} md5:{md5}")
        trailers.append(f"Mlopsctl-Gate: {uc} {_gate_verdict(root, uc, outcomes)}")
    for rel in facts.sources_updated:
        body.append(f"data: recorded the new {rel} in {rel}.dvc")
        trailers.append(f"Mlopsctl-Source: {rel} md5:{hc.md5(rel) or 'missing'}")
    for rel in facts.sources_tracked:
        body.append(f"data: tracked {rel} with DVC")
        trailers.append(f"Mlopsctl-Source: {rel} md5:{hc.md5(rel) or 'missing'}")
    body += [f"remote: {r.message}" for r in facts.plan.remotes]
    if not touched and not sources and facts.changed_files:
        body.append("files: " + ", ".join(facts.changed_files))
    hc.save()
    text = subject + "\n\n"
    if body:
        text += "\n".join(body) + "\n\n"
    return text + "\n".join(trailers) + "\n"


def _gate_verdict(root: Path, uc: str, outcomes: dict[str, Outcome]) -> str:
    """This apply's verdict of the quality gate of *uc*, in words and numbers."""
    gate = outcomes.get("gate")
    path = UseCasePaths(uc).gate
    if gate is None or gate.status == "blocked":
        failed = [n for n, o in outcomes.items() if o.status == "failed"]
        why = f" ({', '.join(failed)} failed)" if failed else ""
        return f"not reached{why}"
    if gate.status == "up-to-date":
        return "up to date (not re-checked)"
    if gate.status == "failed" and path not in gate.outs:
        first = gate.message.splitlines()[0] if gate.message else "no verdict"
        return f"failed ({first})"
    verdict = read_json_object(root, path)
    if verdict is None:
        return "failed (no verdict written)" if gate.status == "failed" else "unknown"
    checks = ", ".join(
        f"{c['metric']}={c['value']:.4g}"
        if isinstance(c.get("value"), int | float)
        else f"{c['metric']}=missing"
        for c in verdict.get("checks", [])
        if isinstance(c, dict)
    )
    word = "passed" if verdict.get("passed") else "failed"
    how = "" if gate.status == "ran" else f", {gate.status}"
    return f"{word} ({checks}{how})"


_IDLE_MARK = "(no stage ran)"


def merge_messages(current: str, earlier: str) -> str:
    """One message for a commit that also holds what an interrupted apply recorded.

    *earlier* is the message that apply wrote before it died (it recorded its stages in
    dvc.lock but made no commit); its body and trailers are kept, marked as such.
    """
    cur_subject, cur_body, cur_trailers = _split(current)
    old_subject, old_body, old_trailers = _split(earlier)
    note = "(recorded by an earlier apply that was interrupted before its commit)"
    if _IDLE_MARK in cur_subject:
        body = [*old_body, "", note] if old_body else [note]
        return _join(old_subject, body, old_trailers)
    body = [*cur_body, "", f"Also in this commit {note}:", old_subject, *old_body]
    trailers = list(dict.fromkeys([*cur_trailers, *old_trailers]))
    return _join(cur_subject, body, trailers)


def _split(message: str) -> tuple[str, list[str], list[str]]:
    lines = message.strip().splitlines()
    subject = lines[0] if lines else ""
    body = [ln for ln in lines[1:] if ln.strip() and not ln.startswith("Mlopsctl-")]
    trailers = [ln for ln in lines[1:] if ln.startswith("Mlopsctl-")]
    return subject, body, trailers


def _join(subject: str, body: list[str], trailers: list[str]) -> str:
    text = subject + "\n\n"
    if body:
        text += "\n".join(body) + "\n\n"
    return text + "\n".join(trailers) + "\n"
