"""Apply a Plan: run the stages it marks (independent ones in parallel), record them, commit.

Order of effects, so that nothing claims what is not on disk:
1. take the project lock; write dvc.yaml (the compiled graph);
2. run or restore each stage as its upstream finishes; every completed stage is appended to
   the journal (``.mlopsctl/journal.jsonl``) with the fingerprint of its inputs;
3. record all completed stages in dvc.lock and the DVC cache in one batch, then fill the
   run-cache and drop the journal;
4. push to the DVC remote (when one is configured) and make one git commit.
A crash between 2 and 3 leaves a journal; the next apply records the stages whose inputs and
outputs still match it, and plans the rest again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any

from mlopsctl.compile import dvcyaml
from mlopsctl.compile.graph import Graph, Stage
from mlopsctl.execute.executors import Executor, make_executor
from mlopsctl.execute.task import StageJob, StageResult, run_job, thread_cap
from mlopsctl.plan import runcache
from mlopsctl.plan.api import Planned
from mlopsctl.plan.hashing import HashCache, file_md5
from mlopsctl.plan.model import Action, Plan, StagePlan
from mlopsctl.plan.planner import stage_fingerprint
from mlopsctl.results import ApplyResult, Outcome, Reporter
from mlopsctl.spec.model import Project

JOURNAL = ".mlopsctl/journal.jsonl"


def write_dvc_yaml(root: Path, graph: Graph) -> bool:
    """Write the compiled graph as dvc.yaml (atomically), if it changed."""
    text = dvcyaml.render(graph)
    path = root / dvcyaml.DVC_YAML
    if path.exists() and path.read_text("utf-8") == text:
        return False
    tmp = path.with_name(f".dvc.yaml.{os.getpid()}.tmp")
    tmp.write_text(text, "utf-8")
    os.replace(tmp, path)
    return True


class Applier:
    """The apply loop over one plan. Use :func:`run_plan`."""

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

    # --- scheduling ----------------------------------------------------------------------
    def run(self) -> list[Outcome]:
        plans = {sp.id: sp for sp in self.plan.stages}
        todo = [
            sp.id
            for sp in self.plan.stages
            if sp.action in (Action.RUN, Action.RESTORE, Action.BLOCKED)
        ]
        todo_set = set(todo)
        for sp in self.plan.stages:
            if sp.action is Action.SKIP:
                self.outcomes[sp.id] = Outcome(sp.id, "up-to-date")
        running: dict[Future[Any], str] = {}
        waiting = list(todo)  # topological order
        while waiting or running:
            progressed = True
            while progressed:  # start every stage that is ready, while there is capacity
                progressed = False
                for sid in list(waiting):
                    if len(running) >= self.executor.max_parallel:
                        break
                    ups = [u for u in self.graph.upstream[sid] if u in todo_set]
                    if any(u not in self.outcomes for u in ups):
                        continue
                    waiting.remove(sid)
                    progressed = True
                    sp = plans[sid]
                    bad = [u for u in ups if self.outcomes[u].status in ("failed", "blocked")]
                    if sp.action is Action.BLOCKED:
                        reasons = "; ".join(r.message for r in sp.reasons)
                        self._finish(Outcome(sid, "blocked", reasons))
                    elif bad:
                        self._finish(
                            Outcome(sid, "blocked", f"upstream {', '.join(bad)} did not complete")
                        )
                    else:
                        fut = self._dispatch(sp)
                        if fut is not None:
                            running[fut] = sid
            if running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    self._complete(running.pop(fut), fut)
            elif waiting:  # nothing runs and nothing is ready: a bug in the graph bookkeeping
                raise RuntimeError(f"apply cannot make progress on {waiting}")
        return [self.outcomes[sp.id] for sp in self.plan.stages if sp.id in self.outcomes]

    def _dispatch(self, sp: StagePlan) -> Future[Any] | None:
        st = self.graph.stages[sp.id]
        deps = {d: self.hashes.md5(d) for d in st.deps}
        doc = self.project.usecase(st.usecase).document
        # an always-changed stage (a SQL source) reads inputs no fingerprint can capture
        hashable = all(deps.values()) and not st.always_changed
        fp = stage_fingerprint(st, deps, doc) if hashable else ""
        locked = self.state.get(st.dvc_name)
        if sp.action is Action.RESTORE:
            self._restore(st, dict(sp.restore), fp, "restored from cache")
            return None
        only_upstream = sp.reasons and all(
            r.kind in ("upstream", "dep-restored") for r in sp.reasons
        )
        # upstream ran and may have produced exactly what this stage was built from
        if (
            only_upstream
            and locked is not None
            and fp
            and all(locked.deps.get(d) == h for d, h in deps.items())
            and all(self.hashes.md5(o) == locked.outs.get(o) for o in st.all_outs)
        ):
            self._finish(Outcome(st.id, "up-to-date", "upstream produced identical outputs"))
            return None
        if fp and not self.plan.inputs.force:
            outs = runcache.lookup(self.root, fp)
            if outs is not None and set(outs) == set(st.all_outs):
                self._restore(st, outs, fp, "restored from run-cache (seen these inputs before)")
                return None
        self.fingerprints[st.id] = fp
        uc = self.project.usecase(st.usecase).spec
        job = StageJob(
            root=str(self.root),
            stage=st,
            usecase=uc,
            n_jobs=_n_jobs(uc.infra.n_jobs),
            allowed_estimator_modules=self.project.config.allowed_estimator_modules,
            threads=thread_cap(uc.infra.n_jobs, self.executor.max_parallel),
        )
        self.reporter.started(st.id, "run")
        return self.executor.submit(run_job, job)

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
        if not result.ok:
            self._finish(Outcome(sid, "failed", result.message, result.seconds, {}, result.started))
            return
        fp = self.fingerprints.get(sid, "")
        self._journal(st, fp, result.outs)
        self.recorded.append(st.dvc_name)
        self._finish(Outcome(sid, "ran", "", result.seconds, result.summary, result.started))

    def _restore(self, st: Stage, outs: Mapping[str, str], fp: str, message: str) -> None:
        start = time.perf_counter()
        self.reporter.started(st.id, "restore")
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
        self._finish(Outcome(st.id, "restored", message, time.perf_counter() - start))

    def _finish(self, outcome: Outcome) -> None:
        self.outcomes[outcome.stage_id] = outcome
        self.reporter.finished(outcome)

    def _journal(self, st: Stage, fp: str, outs: Mapping[str, str]) -> None:
        path = self.root / JOURNAL
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"stage": st.dvc_name, "id": st.id, "fp": fp, "outs": dict(outs)})
        with path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _n_jobs(n: int) -> int:
    return (os.cpu_count() or 1) if n == -1 else n


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
        if st is None or not e.get("fp"):
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
    return ok


def finalize(root: Path, planned: Planned, applier: Applier | None, names: list[str]) -> None:
    """Record stages in dvc.lock and the cache (one batch), fill the run-cache, drop the journal."""
    from mlopsctl.integrations import dvc

    dvc.commit_stages(root, names)
    for e in read_journal(root):
        if e.get("fp") and e.get("stage") in names:
            runcache.record(root, e["fp"], e.get("id", e["stage"]), e["outs"])
    (root / JOURNAL).unlink(missing_ok=True)
    if applier is not None:
        applier.hashes.save()


def remove_stages(root: Path, removed: list[StagePlan], reporter: Reporter) -> list[Outcome]:
    """Delete the outputs and dvc.lock entries of stages that are gone from the specs."""
    import yaml

    lock_path = root / "dvc.lock"
    if not removed or not lock_path.exists():
        return []
    data = yaml.safe_load(lock_path.read_text("utf-8")) or {}
    stages = data.get("stages") or {}
    outcomes = []
    for sp in removed:
        entry = stages.pop(sp.dvc_name, None) or {}
        for out in entry.get("outs") or []:
            p = root / str(out.get("path", ""))
            if p.is_file():
                p.unlink()
            elif p.is_dir():
                shutil.rmtree(p)
        outcomes.append(Outcome(sp.id, "removed"))
        reporter.finished(outcomes[-1])
    data["stages"] = stages
    tmp = lock_path.with_name(f".dvc.lock.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
    os.replace(tmp, lock_path)
    return outcomes


def executor_for(project: Project, jobs: int | None) -> Executor:
    kinds = {uc.spec.infra.executor for uc in project.usecases}
    for kind in kinds - {"local"}:
        make_executor(kind, 1)  # raises a clear error for executors this build cannot run
    n = jobs if jobs is not None else (os.cpu_count() or 1)
    return make_executor("local", max(1, n))


def apply_directory(
    directory: Path,
    reporter: Reporter,
    *,
    planfile: Path | None = None,
    usecases: tuple[str, ...] = (),
    jobs: int | None = None,
    commit: bool | None = None,
    force: bool = False,
) -> ApplyResult:
    """Plan (or load a saved plan), run it under the project lock, record, push and commit."""
    from mlopsctl.errors import MlopsctlError
    from mlopsctl.integrations import dvc, git
    from mlopsctl.plan.api import plan_directory
    from mlopsctl.plan.planfile import check_current, load_plan
    from mlopsctl.report.commit import commit_message, commit_paths
    from mlopsctl.spec.loader import find_project_root

    root = find_project_root(directory)
    saved = load_plan(planfile) if planfile is not None else None
    if saved is not None:
        usecases, force = saved.inputs.usecases, saved.inputs.force
    with _lock(root, reporter):
        planned = plan_directory(root, usecases=usecases, force=force)
        recovered = recover_journal(root, planned, reporter)
        if recovered:
            write_dvc_yaml(root, planned.graph)
            finalize(root, planned, None, recovered)
            planned = plan_directory(root, usecases=usecases, force=force)
        plan = planned.plan
        if saved is not None:
            check_current(saved, plan)
            plan = saved
        do_commit = planned.project.config.commit if commit is None else commit
        spec_files = ["mlopsctl.yaml", *(uc.path for uc in planned.project.usecases)]
        if do_commit:
            git.require_identity(root)  # fail before running anything, not after
        if do_commit or os.environ.get("CI"):
            dirty = git.dirty_paths(root, spec_files)
            if dirty and os.environ.get("CI"):
                raise MlopsctlError(
                    "refusing to apply specs that are not committed (CI is set): "
                    + ", ".join(dirty)
                )
            if dirty:
                reporter.warn(
                    "uncommitted changes to "
                    + ", ".join(dirty)
                    + ": they are included in the apply commit, so that it records what ran"
                )
        git.ensure_ignored(root, ".mlopsctl/", "mlopsctl local cache and locks")
        wrote = write_dvc_yaml(root, planned.graph)
        result = ApplyResult(outcomes=[], plan_id=plan.id)
        recorded: list[str] = list(recovered)
        if plan.to_apply or plan.by_action(Action.BLOCKED):
            executor = executor_for(planned.project, jobs)
            applier = Applier(planned, plan, executor, reporter)
            try:
                result.outcomes = applier.run()
            finally:
                executor.shutdown()
            result.outcomes += remove_stages(root, list(plan.by_action(Action.REMOVE)), reporter)
            finalize(root, planned, applier, applier.recorded)
            recorded += applier.recorded
        elif not wrote:
            reporter.info("No changes. Everything is up to date.")
        remote_name = planned.project.config.remote
        if recorded:
            remote = dvc.remote_configured(root, remote_name)
            if remote is not None:
                result.pushed = dvc.push(root, remote)
                reporter.info(f"pushed {result.pushed} file(s) to DVC remote '{remote}'")
            elif remote_name:
                reporter.warn(
                    f"DVC remote '{remote_name}' is not configured; artifacts were not pushed "
                    f"(configure it with `dvc remote add -d {remote_name} URL`)"
                )
        if do_commit:
            paths = commit_paths(root, planned, spec_files)
            message = commit_message(root, planned, plan, result.outcomes)
            result.commit = git.commit(root, paths, message)
            if result.commit:
                reporter.info(f"committed {result.commit[:10]}")
        return result


def _lock(root: Path, reporter: Reporter) -> Any:
    from mlopsctl.execute.lock import project_lock

    return project_lock(root, warn=reporter.warn)
