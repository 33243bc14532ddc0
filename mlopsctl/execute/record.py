"""Steps 3 and 4 of apply, and the journal they recover from: record with DVC, push, commit.

See :mod:`mlopsctl.execute.apply` for the order of the steps and what a crash at each point
leaves behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlopsctl import fault
from mlopsctl.errors import GitError, StateError
from mlopsctl.fsutil import atomic_write
from mlopsctl.gitops.versions import NewTag, with_trailers
from mlopsctl.plan import runcache
from mlopsctl.plan.api import Planned
from mlopsctl.plan.hashing import HashCache
from mlopsctl.plan.model import Action
from mlopsctl.plan.planner import data_sources, stage_fingerprint
from mlopsctl.results import ApplyResult, Reporter

if TYPE_CHECKING:
    from mlopsctl.execute.apply import Context

JOURNAL = ".mlopsctl/journal.jsonl"
PENDING_COMMIT = ".mlopsctl/pending-commit.txt"
#: the tags the apply commit gets, saved before the commit; gone once they exist
PENDING_TAGS = ".mlopsctl/pending-tags.json"


# --- journal recovery ----------------------------------------------------------------------


def append_journal(root: Path, entry: Mapping[str, Any]) -> None:
    """Append one completed stage to the journal, whole: fsynced, and a SIGINT/SIGTERM that
    arrives meanwhile waits until the line is on disk (it was lost or torn when the signal
    came between opening the file and writing the line)."""
    from mlopsctl.interrupts import deferred

    path = root / JOURNAL
    line = json.dumps(dict(entry)) + "\n"
    with deferred():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


def read_journal(root: Path) -> list[dict[str, Any]]:
    path = root / JOURNAL
    entries = []
    try:
        for line in path.read_text("utf-8").splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue  # a torn last line from a crash
    except FileNotFoundError:
        pass
    return entries


def recover_journal(root: Path, planned: Planned, reporter: Reporter) -> list[str]:
    """Stages an interrupted apply completed whose inputs and outputs are still exactly as run."""
    entries = read_journal(root)
    if not entries:
        return []
    hashes = HashCache(root)
    by_name = {st.dvc_name: st for st in planned.graph}
    ok: list[str] = []
    for e in entries:
        st = by_name.get(e.get("stage", ""))
        if st is None or not e.get("fp") or st.dvc_name in ok:
            continue
        deps = {d: hashes.md5(d) for d in st.deps}
        doc = planned.project.usecase(st.usecase).document
        if not all(deps.values()) or stage_fingerprint(st, deps, doc) != e["fp"]:
            continue
        if all(hashes.md5(rel) == md5 for rel, md5 in e["outs"].items()):
            ok.append(st.dvc_name)
    if ok:
        reporter.warn(
            f"an earlier apply was interrupted; recording the {len(ok)} stage(s) it completed"
        )
    else:
        (root / JOURNAL).unlink(missing_ok=True)  # nothing in it matches the workspace any more
    return ok


# --- 3. record -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedState:
    stages: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    sources_updated: tuple[str, ...] = ()
    sources_tracked: tuple[str, ...] = ()


def finalize(
    root: Path,
    names: list[str],
    removed: tuple[str, ...] = (),
    sources: tuple[str, ...] = (),
    source_remotes: dict[str, str] | None = None,
) -> RecordedState:
    """Record stages and sources with DVC and fill the run-cache.

    The journal stays until :func:`publish` has saved the commit message: a crash before then
    recovers the stages from the journal again, and the commit still names them.
    """
    from mlopsctl.integrations import dvc
    from mlopsctl.interrupts import deferred

    with deferred():  # a SIGINT/SIGTERM waits until dvc.lock, the cache and run-cache agree
        rec = dvc.record(
            root, names, removed=removed, sources=sources, source_remotes=source_remotes
        )
        fault.point("recorded")
        for e in read_journal(root):
            if e.get("fp") and e.get("stage") in names:
                runcache.record(root, e["fp"], e.get("id", e["stage"]), e["outs"])
    return RecordedState(rec.stages, rec.removed, rec.sources_updated, rec.sources_tracked)


def record(ctx: Context, recorded: list[str], reporter: Reporter) -> RecordedState:
    """Step 3: the stages that completed, the removed stages and every data source."""
    removed = tuple(sp.dvc_name for sp in ctx.plan.by_action(Action.REMOVE))
    sources = tuple(data_sources(ctx.planned.project, ctx.planned.graph))
    rec = finalize(ctx.root, recorded, removed, sources, ctx.planned.project.source_remotes())
    for rel in rec.sources_updated:
        reporter.info(f"recorded the new {rel} in {rel}.dvc")
    for rel in rec.sources_tracked:
        reporter.info(f"tracked {rel} with DVC ({rel}.dvc): data sources are versioned by DVC")
    return rec


# --- 4. publish ----------------------------------------------------------------------------


def _push_failed(ctx: Context, exc: StateError) -> str:
    """The error of a failed push: what was kept, and that the next apply pushes again."""
    kept = "recorded and committed" if ctx.do_commit else "recorded"
    return f"{exc.message}: everything is {kept}; the next apply pushes again"


def _push_own_remotes(
    ctx: Context, rec: RecordedState, result: ApplyResult, pushed_to: str | None, reporter: Reporter
) -> str | None:
    """Push the artifacts of use cases with their own ``infra.remote`` there; a push error or
    None. The push to the project's remote left them out (their outputs name their remote).
    Each remote is configured: pre-flight refused the apply otherwise (``require_own_remotes``).
    """
    from mlopsctl.execute.remote import own_remote_targets
    from mlopsctl.integrations import dvc

    recorded = set(rec.stages)
    for remote, (usecases, targets) in own_remote_targets(ctx.planned, recorded).items():
        if remote == pushed_to or not targets:
            continue
        whose = f"infra.remote of {', '.join(usecases)}"
        try:
            fault.point("push")
            pushed = dvc.push(ctx.root, remote, targets)
        except StateError as exc:
            return _push_failed(ctx, exc)
        result.pushed = (result.pushed or 0) + pushed
        if pushed:
            reporter.info(f"pushed {pushed} file(s) to DVC remote '{remote}' ({whose})")
    return None


def publish(
    ctx: Context, result: ApplyResult, rec: RecordedState, reporter: Reporter
) -> str | None:
    """Step 4: push what the remote lacks, then commit. Returns a push error, or None."""
    from mlopsctl.integrations import dvc, git
    from mlopsctl.report.commit import (
        ApplyFacts,
        commit_message,
        commit_paths,
        merge_messages,
    )

    facts = ApplyFacts(
        plan=ctx.plan,
        outcomes=tuple(result.outcomes),
        recovered=tuple(ctx.recovered),
        sources_updated=rec.sources_updated,
        sources_tracked=rec.sources_tracked,
        wrote_dvc_yaml=ctx.wrote_dvc_yaml,
    )
    pending = ctx.root / PENDING_COMMIT
    message = ""
    paths = commit_paths(ctx.root, ctx.planned, ctx.spec_files)
    new_tags = versions_and_cards(ctx, reporter)
    if ctx.do_commit:
        facts = replace(facts, changed_files=tuple(git.dirty_paths(ctx.root, paths)))
        message = commit_message(ctx.root, ctx.planned, facts)
        if pending.exists():  # an earlier apply recorded its work, then died before committing
            message = merge_messages(message, pending.read_text("utf-8"))
        message = with_trailers(message, new_tags)
        # until the commit is made, a crash must not lose what this apply did: the next apply
        # commits it with this message (merged into its own)
        atomic_write(pending, message)
        if new_tags:  # and the tags it names are made by the next apply (recover_tags)
            head = git.head_commit(ctx.root) or ""
            doc = {"parent": head, "tags": [t.to_dict() for t in new_tags]}
            atomic_write(ctx.root / PENDING_TAGS, json.dumps(doc, indent=2, sort_keys=True))
    (ctx.root / JOURNAL).unlink(missing_ok=True)
    push_error = None
    remote_name = ctx.planned.project.config.remote
    remote = dvc.remote_configured(ctx.root, remote_name)
    if remote is not None:
        try:
            fault.point("push")
            result.pushed = dvc.push(ctx.root, remote)
            if result.pushed:
                reporter.info(f"pushed {result.pushed} file(s) to DVC remote '{remote}'")
        except StateError as exc:
            push_error = _push_failed(ctx, exc)
    elif remote_name and (rec.stages or rec.sources_updated or rec.sources_tracked):
        reporter.warn(
            f"DVC remote '{remote_name}' is not configured; artifacts were not pushed "
            f"(configure it with `dvc remote add -d {remote_name} URL`)"
        )
    push_error = push_error or _push_own_remotes(ctx, rec, result, remote, reporter)
    if ctx.do_commit:
        fault.point("commit")
        result.commit = git.commit(ctx.root, paths, message)
        pending.unlink(missing_ok=True)
        if result.commit:
            reporter.info(f"committed {result.commit[:10]}")
        if new_tags:
            fault.point("tag")
            # nothing to commit: HEAD already holds exactly this state
            target = result.commit or git.head_commit(ctx.root)
            if target:
                create_tags(ctx.root, target, new_tags, reporter)
        (ctx.root / PENDING_TAGS).unlink(missing_ok=True)
    return push_error


# --- versions, deployments and model cards --------------------------------------------------


def versions_and_cards(ctx: Context, reporter: Reporter) -> list[NewTag]:
    """Decide this commit's version and deployment tags; write the model cards that changed.

    Both come from the state just recorded (dvc.lock, the reports) and the tags, so they are
    the same whichever apply, interrupted or not, did the work.
    """
    from mlopsctl.gitops import modelcard, versions
    from mlopsctl.integrations import git
    from mlopsctl.plan.state import read_state

    root = ctx.root
    project = ctx.planned.project
    usecases = [uc.spec for uc in project.usecases]
    state = read_state(root)
    new_tags, infos = versions.decide(
        root, usecases, state, versions.read_tags(root), commit=ctx.do_commit
    )
    try:
        head = git.head_commit(root)
    except GitError:  # --no-commit outside a git repository
        head = None
    present = {uc.name for uc in project.usecases}
    removed = sorted({sp.usecase for sp in ctx.plan.stages} - present)
    modelcard.write_cards(root, usecases, state, infos, head, removed)
    return new_tags


def create_tags(root: Path, commit: str, tags: list[NewTag], reporter: Reporter) -> None:
    """Create *tags* (a target of None means *commit*), skipping those that already exist."""
    from mlopsctl.gitops.versions import read_tags
    from mlopsctl.integrations import git

    existing = {t.name: t.commit for t in read_tags(root)}
    for t in tags:
        target = t.target or commit
        if t.name in existing:
            if existing[t.name] != target:
                reporter.warn(
                    f"tag {t.name} already exists on {existing[t.name][:10]}, not on "
                    f"{target[:10]}: left as it is"
                )
            continue
        git.create_tag(root, t.name, target, t.message)
        reporter.info(f"tagged {target[:10]} {t.name}")


def recover_tags(root: Path, reporter: Reporter) -> None:
    """Create the tags an apply committed but was killed before tagging.

    The saved list names each tag; the apply commit (found after the saved parent by the
    trailer that names the tag) is its target. An apply killed before its commit left no such
    commit: its tags are dropped, and the apply that commits its work decides them again.
    """
    from mlopsctl.gitops.versions import trailer_tags
    from mlopsctl.integrations import git

    path = root / PENDING_TAGS
    try:
        doc = json.loads(path.read_text("utf-8"))
        tags = [NewTag.from_dict(d) for d in doc["tags"]]
        parent = str(doc.get("parent") or "") or None
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)  # torn or foreign: the state-based decision redoes it
        return
    try:
        commits = git.commit_messages(root, parent)
    except GitError as exc:  # the parent is gone (history rewritten): nothing to attach to
        reporter.warn(f"cannot recover the tags of an interrupted apply: {exc.message}")
        path.unlink(missing_ok=True)
        return
    for sha, message in reversed(commits):  # oldest first
        named = trailer_tags(message)
        todo = [t for t in tags if t.name in named]
        if todo:
            reporter.warn(
                f"an earlier apply was interrupted before tagging {sha[:10]}; creating "
                + ", ".join(t.name for t in todo)
            )
            create_tags(root, sha, todo, reporter)
    path.unlink(missing_ok=True)
