"""Apply a Plan: run the stages it marks (independent ones in parallel), record them, commit.

:func:`apply_directory` is four named steps under the project lock, in this order, so that
nothing claims what is not on disk:

1. **pre-flight** (:func:`preflight`): plan (or load a saved plan and check it is current),
   record what an interrupted apply completed (the journal), refuse to start when git has no
   identity or CI has uncommitted specs, write dvc.yaml.
2. **run** (:class:`Applier`): run or restore each stage as its upstream finishes; every stage
   that completes is appended to the journal (``.mlopsctl/journal.jsonl``) with the fingerprint
   of its inputs; stages gone from the specs have their outputs removed.
3. **record** (``execute/record.py``): the completed stages go into dvc.lock and the DVC cache
   in one batch, changed data sources into their ``.dvc`` files, both written whole and
   renamed into place; then the run-cache is filled.
4. **publish** (``execute/record.py``): save the commit message, drop the journal, push
   whatever the DVC remote lacks of what dvc.lock and the ``.dvc`` files name (even when
   nothing ran: an earlier push may have failed), then make one git commit whose message says
   exactly what this apply did.

A crash in 2 or 3 leaves a journal; the next apply records the stages whose inputs and outputs
still match it, and plans the rest again. A crash in 4 leaves everything recorded: the next
apply pushes what is missing and commits.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsctl import fault
from mlopsctl.compile import dvcyaml
from mlopsctl.compile.graph import Graph, Stage
from mlopsctl.errors import MlopsctlError, StateError
from mlopsctl.execute import executors
from mlopsctl.execute.executors import Executor
from mlopsctl.execute.record import (
    append_journal,
    finalize,
    publish,
    record,
    recover_journal,
    recover_tags,
)
from mlopsctl.execute.schedule import concurrency, run_in_order
from mlopsctl.execute.task import StageJob, StageResult, run_job, thread_cap
from mlopsctl.fsutil import atomic_write
from mlopsctl.plan import runcache
from mlopsctl.plan.api import Planned
from mlopsctl.plan.hashing import HashCache, file_md5
from mlopsctl.plan.model import Action, Plan, StagePlan
from mlopsctl.plan.planner import stage_fingerprint
from mlopsctl.plan.state import AppliedState
from mlopsctl.report import progress
from mlopsctl.results import ApplyResult, Outcome, Reporter
from mlopsctl.spec.model import Project
from mlopsctl.spec.paths import inside_repo


def write_dvc_yaml(root: Path, graph: Graph) -> bool:
    """Write the compiled graph as dvc.yaml (atomically), if it changed."""
    text = dvcyaml.render(graph)
    path = root / dvcyaml.DVC_YAML
    if path.exists() and path.read_text("utf-8") == text:
        return False
    atomic_write(path, text)
    return True


# --- 1. pre-flight -------------------------------------------------------------------------


@dataclass
class Context:
    """What the steps after pre-flight work from."""

    root: Path
    planned: Planned
    plan: Plan
    do_commit: bool
    spec_files: list[str]
    recovered: list[str] = field(default_factory=list)  # dvc stage names recorded from a journal
    wrote_dvc_yaml: bool = False


def preflight(
    root: Path,
    reporter: Reporter,
    *,
    saved: Plan | None,
    usecases: tuple[str, ...],
    force: bool,
    commit: bool | None,
) -> Context:
    from mlopsctl.integrations import git
    from mlopsctl.plan.api import plan_directory
    from mlopsctl.plan.planfile import check_current

    _clean_staging(root)
    planned = plan_directory(root, usecases=usecases, force=force)
    require_own_remotes(root, planned.project)
    recovered = recover_journal(root, planned, reporter)
    if recovered:
        write_dvc_yaml(root, planned.graph)
        finalize(root, recovered)
        planned = plan_directory(root, usecases=usecases, force=force)
    plan = planned.plan
    if saved is not None:
        check_current(saved, plan)
        plan = saved
    do_commit = planned.project.config.commit if commit is None else commit
    spec_files = ["mlopsctl.yaml", *(uc.path for uc in planned.project.usecases)]
    if do_commit:
        git.require_identity(root)  # fail before running anything, not after
        recover_tags(root, reporter)  # an apply killed between its commit and its tags
    if do_commit or os.environ.get("CI"):
        dirty = git.dirty_paths(root, spec_files)
        if dirty and os.environ.get("CI"):
            raise MlopsctlError(
                "refusing to apply specs that are not committed (CI is set): " + ", ".join(dirty)
            )
        if dirty:
            reporter.warn(
                "uncommitted changes to "
                + ", ".join(dirty)
                + ": they are included in the apply commit, so that it records what ran"
            )
    git.ensure_ignored(root, ".mlopsctl/", "mlopsctl local cache and locks")
    wrote = write_dvc_yaml(root, planned.graph)
    return Context(root, planned, plan, do_commit, spec_files, recovered, wrote)


def require_own_remotes(root: Path, project: Project) -> None:
    """Refuse, before anything runs, a use case's ``infra.remote`` that DVC does not know: dvc.yaml
    names it on the use case's outputs, and DVC then refuses every push, pull and remote status
    of the repository, the other use cases' too."""
    own = project.own_remotes()
    if not own:
        return
    from mlopsctl.integrations import dvc

    for remote, names in own.items():
        if dvc.remote_configured(root, remote) != remote:
            raise MlopsctlError(
                f"DVC remote '{remote}' (infra.remote of {', '.join(names)}) is not configured: "
                f"add it with `dvc remote add {remote} URL`, or remove infra.remote (DVC refuses "
                "every push and pull while an output names a remote it does not know)"
            )


def _clean_staging(root: Path) -> None:
    """Staging directories a killed apply left behind (we hold the lock: nobody uses them)."""
    shutil.rmtree(root / ".mlopsctl" / "tmp", ignore_errors=True)


# --- 2. run --------------------------------------------------------------------------------


class Applier:
    """The apply loop over one plan: a topological scheduler over the stages it touches."""

    def __init__(
        self,
        planned: Planned,
        plan: Plan,
        executor: Executor,
        reporter: Reporter,
    ) -> None:
        self.project: Project = planned.project
        self.root = planned.project.root
        self.graph = planned.graph
        self.state = planned.state
        self.plan = plan
        self.executor = executor
        self.reporter = reporter
        self.hashes = HashCache(self.root)
        self.outcomes: dict[str, Outcome] = {}
        self.recorded: list[str] = []  # dvc stage names to commit
        self.fingerprints: dict[str, str] = {}
        self.results: dict[str, StageResult] = {}
        #: how many stages can run at once at most: what sizes each stage's share of the cores
        self.parallel = concurrency(
            [sp.id for sp in plan.stages if sp.action is Action.RUN],
            self.graph.upstream,
            executor.max_parallel,
        )

    def run(self) -> list[Outcome]:
        plans = {sp.id: sp for sp in self.plan.stages}
        for sp in self.plan.stages:
            if sp.action is Action.SKIP:
                self.outcomes[sp.id] = Outcome(sp.id, "up-to-date")
        todo = [
            sp.id
            for sp in self.plan.stages
            if sp.action in (Action.RUN, Action.RESTORE, Action.BLOCKED)
        ]
        run_in_order(
            todo,
            self.graph.upstream,
            self.executor.max_parallel,
            lambda sid: self._start(plans[sid]),
            self._complete,
        )
        return [self.outcomes[sp.id] for sp in self.plan.stages if sp.id in self.outcomes]

    def _start(self, sp: StagePlan) -> Future[Any] | None:
        ups = [u for u in self.graph.upstream[sp.id] if u in self.outcomes]
        bad = [u for u in ups if self.outcomes[u].status in ("failed", "blocked")]
        if sp.action is Action.BLOCKED:
            self._finish(Outcome(sp.id, "blocked", "; ".join(r.message for r in sp.reasons)))
            return None
        if bad:
            self._finish(Outcome(sp.id, "blocked", f"upstream {', '.join(bad)} did not complete"))
            return None
        return self._dispatch(sp)

    def _dispatch(self, sp: StagePlan) -> Future[Any] | None:
        st = self.graph.stages[sp.id]
        if sp.action is Action.RESTORE:
            self._restore(st, dict(sp.restore), self._fingerprint(st), "from the DVC cache")
            return None
        fp = self._fingerprint(st)
        if sp.conditional and fp:
            # the plan left this to apply: its inputs were unknown until upstream had run
            locked = self.state.get(st.dvc_name)
            deps = {d: self.hashes.md5(d) for d in st.deps}
            only_upstream = all(r.kind in ("upstream", "dep-restored") for r in sp.reasons)
            if (
                only_upstream
                and locked is not None
                and all(locked.deps.get(d) == h for d, h in deps.items())
                and all(self.hashes.md5(o) == locked.outs.get(o) for o in st.all_outs)
            ):
                self._finish(Outcome(st.id, "up-to-date", "upstream produced identical outputs"))
                return None
            outs = runcache.lookup(self.root, fp)
            if outs is not None and set(outs) == set(st.all_outs):
                self._restore(st, outs, fp, "from the run-cache (seen these inputs before)")
                return None
        self.fingerprints[st.id] = fp
        uc = self.project.usecase(st.usecase).spec
        job = StageJob(
            root=str(self.root),
            stage=st,
            usecase=uc,
            n_jobs=_n_jobs(uc.infra.n_jobs),
            allowed_estimator_modules=self.project.config.allowed_estimator_modules,
            threads=thread_cap(uc.infra.n_jobs, self.parallel),
        )
        self.reporter.started(st.id, "run")
        return self.executor.submit(run_job, job)

    def _fingerprint(self, st: Stage) -> str:
        """The run-cache key of *st* on the inputs on disk now ("" when it has none)."""
        deps = {d: self.hashes.md5(d) for d in st.deps}
        # an always-changed stage (a SQL source) reads inputs no fingerprint can capture
        if st.always_changed or not all(deps.values()):
            return ""
        doc = self.project.usecase(st.usecase).document
        return stage_fingerprint(st, deps, doc)

    def _complete(self, sid: str, fut: Future[Any]) -> None:
        st = self.graph.stages[sid]
        try:
            result: StageResult = fut.result()
        except Exception as exc:  # the worker process died (OOM kill, segfault in a library)
            self._finish(Outcome(sid, "failed", f"worker failed: {type(exc).__name__}: {exc}"))
            return
        self.results[sid] = result
        for rel, md5 in result.outs.items():
            self.hashes.remember(rel, md5)
        status = "ran" if result.ok else "failed"
        if result.ok:
            self._journal(st, self.fingerprints.get(sid, ""), result.outs)
            self.recorded.append(st.dvc_name)
        self._finish(
            Outcome(
                sid,
                status,
                result.message,
                result.seconds,
                result.summary if result.ok else {},
                result.started,
                dict(result.outs),
            )
        )

    def _restore(self, st: Stage, outs: Mapping[str, str], fp: str, message: str) -> None:
        start = time.perf_counter()
        self.reporter.started(st.id, "restore")
        for rel in outs:  # a committed symlink must not lead the restore out of the repo
            inside_repo(self.root, rel)
        for rel, md5 in outs.items():
            src = runcache.find_object(self.root, md5)
            if src is None:
                self._finish(
                    Outcome(st.id, "failed", f"{rel} ({md5[:7]}) is no longer in the cache")
                )
                return
            dst = self.root / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.{os.getpid()}.restore")
            shutil.copyfile(src, tmp)
            if file_md5(tmp) != md5:
                tmp.unlink()
                self._finish(Outcome(st.id, "failed", f"cache object for {rel} is corrupt"))
                return
            os.replace(tmp, dst)
            self.hashes.remember(rel, md5)
        self._journal(st, fp, dict(outs))
        self.recorded.append(st.dvc_name)
        secs = time.perf_counter() - start
        self._finish(Outcome(st.id, "restored", message, secs, outs=dict(outs)))

    def _finish(self, outcome: Outcome) -> None:
        self.outcomes[outcome.stage_id] = outcome
        self.reporter.finished(outcome)

    def _journal(self, st: Stage, fp: str, outs: Mapping[str, str]) -> None:
        entry = {"stage": st.dvc_name, "id": st.id, "fp": fp, "outs": dict(outs)}
        append_journal(self.root, entry)
        fault.point("journaled")


def _n_jobs(n: int) -> int:
    return (os.cpu_count() or 1) if n == -1 else n


def run(
    ctx: Context, jobs: int | None, reporter: Reporter, executor_kind: str | None = None
) -> tuple[list[Outcome], list[str]]:
    """Run the plan's stages and remove the removed ones: (outcomes, dvc stage names to record)."""
    plan = ctx.plan
    if not (plan.to_apply or plan.by_action(Action.BLOCKED)):
        return [], []
    executor = executor_for(ctx.planned.project, jobs, plan, executor_kind)
    preloading = not isinstance(executor, executors.InlineExecutor)
    if preloading:  # stages elsewhere: import DVC meanwhile
        from mlopsctl.integrations import dvc

        dvc.preload(ctx.root)
    applier = Applier(ctx.planned, plan, executor, reporter)
    try:
        with progress.watch(ctx.root, reporter):  # tuning's fits done / total, from the workers
            outcomes = applier.run()
    except BaseException:  # interrupted (SIGINT/SIGTERM) or a bug: stop workers now
        executor.cancel()
        raise
    finally:
        executor.shutdown()
        if preloading:  # it opens the repository (DVC writes .dvc/tmp and its site cache):
            dvc.wait_for_preload()  # never after the stages, nor after the project lock is let go
    outcomes += remove_outputs(
        ctx.root, ctx.planned.state, list(plan.by_action(Action.REMOVE)), reporter
    )
    applier.hashes.save()
    return outcomes, applier.recorded


def remove_outputs(
    root: Path, state: AppliedState, removed: list[StagePlan], reporter: Reporter
) -> list[Outcome]:
    """Delete the outputs of stages gone from the specs (:func:`record` drops their entries)."""
    outcomes = []
    for sp in removed:
        entry = state.get(sp.dvc_name)
        outs = list(entry.outs) if entry is not None else []
        for out in outs:  # every path first: refuse before deleting anything
            inside_repo(root, out)
        for out in outs:
            p = root / out
            if p.is_symlink() or p.is_file():
                p.unlink()
            elif p.is_dir():
                shutil.rmtree(p)
        outcomes.append(Outcome(sp.id, "removed"))
        reporter.finished(outcomes[-1])
    return outcomes


def executor_for(
    project: Project, jobs: int | None, plan: Plan | None = None, kind: str | None = None
) -> Executor:
    """The executor of the use cases with stages to run (``infra.executor``; *kind* overrides)."""
    running = {sp.usecase for sp in plan.by_action(Action.RUN)} if plan is not None else None
    infra = {
        uc.name: uc.spec.infra for uc in project.usecases if running is None or uc.name in running
    }
    n = jobs if jobs is not None else (os.cpu_count() or 1)
    warm = plan is not None and executors.warm_pool(
        (sp.usecase, sp.kind) for sp in plan.by_action(Action.RUN)
    )
    return executors.executor_for(infra, max(1, n), project.root, kind, warm)


def apply_directory(
    directory: Path,
    reporter: Reporter,
    *,
    planfile: Path | None = None,
    usecases: tuple[str, ...] = (),
    jobs: int | None = None,
    commit: bool | None = None,
    force: bool = False,
    executor: str | None = None,
) -> ApplyResult:
    """Plan (or load a saved plan), run it under the project lock, record, push and commit."""
    from mlopsctl.plan.planfile import load_plan
    from mlopsctl.spec.loader import find_project_root

    root = find_project_root(directory)
    saved = load_plan(planfile) if planfile is not None else None
    if saved is not None:
        usecases, force = saved.inputs.usecases, saved.inputs.force
    with _lock(root, reporter):
        ctx = preflight(root, reporter, saved=saved, usecases=usecases, force=force, commit=commit)
        result = ApplyResult(outcomes=[], plan_id=ctx.plan.id)
        result.outcomes, recorded = run(ctx, jobs, reporter, executor)
        result.outcomes += [
            Outcome(f"{name.split('_', 1)[0]}/{name.split('_', 1)[1]}", "recovered", "")
            for name in ctx.recovered
        ]
        rec = record(ctx, recorded, reporter)
        if not (
            result.outcomes or rec.sources_updated or rec.sources_tracked or ctx.wrote_dvc_yaml
        ):
            reporter.info("No changes. Everything is up to date.")
        push_error = publish(ctx, result, rec, reporter)
    if push_error:
        raise StateError(push_error)
    return result


def _lock(root: Path, reporter: Reporter) -> Any:
    from mlopsctl.execute.lock import project_lock

    return project_lock(root, warn=reporter.warn)
