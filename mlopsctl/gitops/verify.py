"""`mlopsctl verify [REV]`: re-prove that REV's recorded outputs come from its inputs.

An auditor years later asks: does the model deployed from REV really come from REV's data,
code and params? :func:`verify_directory` answers without touching the user's working tree,
index or dvc.lock:

1. **check out** REV into a scratch git worktree in a temporary directory (``git worktree add
   --detach``), removed afterwards whatever happens (``gitops/worktree.py``);
2. **fetch** from the DVC remote of the real repository (its ``.dvc/config`` and
   ``.dvc/config.local``, relative URLs resolved as DVC resolves them; ``gitops/remote_objects``)
   every object REV names:
   the inputs (DVC-tracked sources, and recorded outputs of stages that are not re-run) and
   every recorded output; each is hashed, so a missing or tampered object is reported as such;
3. **re-run** every stage REV's dvc.lock records, in dependency order and in parallel where
   independent, with apply's unit of work (:func:`mlopsctl.execute.task.run_job`), recording
   nothing, committing nothing, pushing nothing;
4. **judge** each stage: its outputs' md5 (DVC's, ``.dir`` hashes for folders) against dvc.lock.

Verdicts (see docs/usage.md, "verify"): ``reproduced``, ``nondeterministic`` (differs, within
``--tolerance``), ``diverged``, ``failed``, ``blocked``, ``missing-input``, ``corrupt-input``,
``missing-output``, ``corrupt-output``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsctl.compile.graph import Graph, Stage
from mlopsctl.errors import MlopsctlError, StateError
from mlopsctl.gitops.remote_objects import (
    ObjectCheck,
    RemoteStore,
    objects_message,
    open_remote,
    tracked_sources,
)
from mlopsctl.gitops.worktree import has_file, resolve_commit, scratch_worktree
from mlopsctl.plan.state import AppliedState, LockedStage
from mlopsctl.results import Outcome, Reporter
from mlopsctl.spec.model import Project

log = logging.getLogger(__name__)

#: verdicts that let verify exit 0
PASSING = frozenset({"reproduced", "nondeterministic"})
VERDICTS = (
    "reproduced",
    "nondeterministic",
    "diverged",
    "failed",
    "blocked",
    "missing-input",
    "corrupt-input",
    "missing-output",
    "corrupt-output",
)


# --- values --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputCheck:
    """One output of a re-run stage against dvc.lock."""

    path: str
    recorded: str
    reproduced: str | None  # None: the re-run did not write it
    within_tolerance: bool | None = None  # None when identical (or not judged)
    detail: str = ""

    @property
    def match(self) -> bool:
        return self.reproduced == self.recorded

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "recorded": self.recorded,
            "reproduced": self.reproduced,
            "match": self.match,
            "within_tolerance": self.within_tolerance,
            "detail": self.detail,
        }


@dataclass
class StageVerdict:
    stage_id: str
    verdict: str
    message: str = ""
    seconds: float = 0.0
    outputs: list[OutputCheck] = field(default_factory=list)
    objects: list[ObjectCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def usecase(self) -> str:
        return self.stage_id.split("/", 1)[0]

    @property
    def stage(self) -> str:
        return self.stage_id.split("/", 1)[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.stage_id,
            "usecase": self.usecase,
            "stage": self.stage,
            "verdict": self.verdict,
            "ok": self.verdict in PASSING,
            "message": self.message,
            "seconds": round(self.seconds, 3),
            "outputs": [o.to_dict() for o in self.outputs],
            "objects": [o.to_dict() for o in self.objects],
            "notes": list(self.notes),
        }


@dataclass
class VerifyResult:
    rev: str  # as the user gave it
    commit: str  # the commit it resolved to
    remote: str  # the DVC remote's name
    tolerance: float
    stages: list[StageVerdict] = field(default_factory=list)
    not_recorded: list[str] = field(default_factory=list)  # compiled, but not in dvc.lock

    @property
    def ok(self) -> bool:
        return all(s.verdict in PASSING for s in self.stages)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.stages:
            out[s.verdict] = out.get(s.verdict, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """The stable ``verify --format json`` document (docs/usage.md, "verify")."""
        return {
            "rev": self.rev,
            "commit": self.commit,
            "remote": self.remote,
            "tolerance": self.tolerance,
            "ok": self.ok,
            "counts": dict(sorted(self.counts().items())),
            "stages": [s.to_dict() for s in self.stages],
            "not_recorded": list(self.not_recorded),
        }


# --- tolerance: pure functions ------------------------------------------------------------


def number_holds(recorded: float, reproduced: float, tolerance: float) -> bool:
    """``|reproduced - recorded| <= tolerance * max(1, |recorded|)``: absolute for scores in
    [0, 1], relative for large numbers (an RMSE in thousands)."""
    if math.isnan(recorded) or math.isnan(reproduced):
        return math.isnan(recorded) and math.isnan(reproduced)
    scale = max(1.0, abs(recorded))
    # 1e-12: the rounding of the subtraction itself (0.951 - 0.95 is a hair above 0.001)
    return abs(reproduced - recorded) <= (tolerance + 1e-12) * scale


def compare_json(recorded: Any, reproduced: Any, tolerance: float) -> tuple[bool, list[str]]:
    """Compare two JSON documents number by number: (within tolerance, the differences).

    The structure (keys, list lengths, types) and every string, boolean and null must be equal;
    numbers may differ by the tolerance (:func:`number_holds`).
    """
    diffs: list[str] = []
    holds = _compare(recorded, reproduced, tolerance, "", diffs)
    return holds, diffs


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compare(old: Any, new: Any, tol: float, where: str, diffs: list[str]) -> bool:
    here = where or "(document)"
    if _is_number(old) and _is_number(new):
        if old == new:
            return True
        ok = number_holds(float(old), float(new), tol)
        diffs.append(f"{here}: {old:.6g} -> {new:.6g}" + ("" if ok else f" (beyond {tol:g})"))
        return ok
    if isinstance(old, dict) and isinstance(new, dict):
        if set(old) != set(new):
            gone, added = sorted(set(old) - set(new)), sorted(set(new) - set(old))
            diffs.append(f"{here}: keys differ (missing {gone}, new {added})")
            return False
        results = [
            _compare(old[k], new[k], tol, f"{where}.{k}" if where else k, diffs) for k in old
        ]
        return all(results)
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            diffs.append(f"{here}: {len(old)} items -> {len(new)}")
            return False
        results = [
            _compare(a, b, tol, f"{where}[{i}]", diffs)
            for i, (a, b) in enumerate(zip(old, new, strict=True))
        ]
        return all(results)
    if old != new or type(old) is not type(new):
        diffs.append(f"{here}: {json.dumps(old)[:40]} -> {json.dumps(new)[:40]}")
        return False
    return True


# --- the verifier -------------------------------------------------------------------------


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


@dataclass
class _Run:
    """What happened to one stage while verifying it."""

    verdict: str = ""  # set when the stage was not run (missing-input, blocked, ...)
    message: str = ""
    ok: bool = False
    outs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


class Verifier:
    """Re-runs the recorded stages of a checked-out revision and judges each one."""

    def __init__(
        self,
        project: Project,
        graph: Graph,
        state: AppliedState,
        store: RemoteStore,
        tolerance: float,
        reporter: Reporter,
    ) -> None:
        self.root = project.root
        self.project = project
        self.graph = graph
        self.state = state
        #: stage id -> what dvc.lock records of it (only these stages are re-run)
        self.locked: dict[str, LockedStage] = {}
        for sid in graph.order:
            entry = state.get(graph.stages[sid].dvc_name)
            if entry is not None:
                self.locked[sid] = entry
        self.store = store
        self.tolerance = tolerance
        self.reporter = reporter
        self.ids = list(self.locked)
        produced = {o: sid for sid in self.ids for o in graph.stages[sid].all_outs}
        self.producer = produced
        self.inputs: dict[str, list[ObjectCheck]] = {}  # external input path -> its checks
        self.outputs: dict[str, list[ObjectCheck]] = {sid: [] for sid in self.ids}
        self.recorded_json: dict[str, Any] = {}  # output path -> recorded JSON document
        self.runs: dict[str, _Run] = {}
        self.parallel = 1  # how many stages can run at once (set by _schedule)

    # -- fetch --

    def fetch(self, sources: Mapping[str, str]) -> None:
        """Fetch and check every object REV names; place the good inputs into the worktree."""
        needed = self._external_inputs(sources)
        total = len(needed) + sum(len(self.locked[sid].outs) for sid in self.ids)
        self.reporter.info(
            f"checking {total} recorded object(s) against DVC remote '{self.store.name}'"
        )
        for rel, md5 in needed.items():
            checks = self.store.check(rel, md5, "input")
            self.inputs[rel] = checks
            if all(c.state == "ok" for c in checks):
                self.store.place(self.root, rel, md5)
        for sid in self.ids:
            st = self.graph.stages[sid]
            for rel, md5 in self.locked[sid].outs.items():
                if rel in st.cached_outs or rel not in st.all_outs:
                    checks = self.store.check(rel, md5, "output")
                    self.outputs[sid] += checks
                    if (
                        checks[0].state == "ok"
                        and rel.endswith(".json")
                        and not md5.endswith(".dir")
                    ):
                        self._keep_json(rel, self.store.local(md5))
                else:
                    self.outputs[sid].append(self._check_git(rel, md5))

    def _external_inputs(self, sources: Mapping[str, str]) -> dict[str, str]:
        """Inputs of the re-run that no re-run stage produces and git does not hold: path -> md5.

        A DVC-tracked source is named by its ``.dvc`` file; an output of a stage that is not
        re-run (another use case's, with ``-u``) by dvc.lock.
        """
        recorded_outs: dict[str, str] = {}
        for entry in self.state.stages.values():
            recorded_outs.update(entry.outs)
        needed: dict[str, str] = {}
        for sid in self.ids:
            for dep in self.graph.stages[sid].deps:
                if any(_under(dep, o) for o in self.producer):
                    continue
                for src, md5 in sources.items():
                    if _under(dep, src) or _under(src, dep):
                        needed[src] = md5
                if dep in recorded_outs and dep not in sources and not (self.root / dep).exists():
                    needed[dep] = recorded_outs[dep]
        return needed

    def _check_git(self, rel: str, md5: str) -> ObjectCheck:
        """An output committed to git (cache: false): the file at REV must hash to dvc.lock's."""
        from mlopsctl.plan.hashing import HashCache

        path = self.root / rel
        found = HashCache(self.root).md5(rel) if path.exists() or path.is_symlink() else None
        if found is None:
            return ObjectCheck(rel, md5, "output", "git", "missing")
        if found != md5:
            return ObjectCheck(rel, md5, "output", "git", "corrupt", found)
        if rel.endswith(".json") and path.is_file():
            self._keep_json(rel, path)
        return ObjectCheck(rel, md5, "output", "git", "ok")

    def _keep_json(self, rel: str, path: Path) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.recorded_json[rel] = json.loads(path.read_text("utf-8"))

    # -- run --

    def run(self, jobs: int) -> None:
        """Re-run every recorded stage: dependency order, independent ones in parallel."""
        from mlopsctl.execute.executors import make_executor, warm_pool

        stages = (self.graph.stages[sid] for sid in self.ids)
        warm = warm_pool((st.usecase, st.kind) for st in stages)
        executor = make_executor("local", max(1, jobs), warm=warm)
        try:
            self._schedule(executor)
        except BaseException:  # interrupted: stop the workers and what they started
            executor.cancel()
            raise
        finally:
            executor.shutdown()

    def _schedule(self, executor: Any) -> None:
        from mlopsctl.execute.schedule import concurrency, run_in_order

        # each stage's share of the cores: by how many stages can ever run at once
        self.parallel = concurrency(self.ids, self.graph.upstream, executor.max_parallel)
        run_in_order(
            self.ids,
            self.graph.upstream,
            executor.max_parallel,
            lambda sid: self._start(sid, executor),
            self._complete,
        )

    def _start(self, sid: str, executor: Any) -> Future[Any] | None:
        from mlopsctl.execute.task import StageJob, run_job, thread_cap

        st = self.graph.stages[sid]
        skip = self._cannot_run(st)
        if skip is not None:
            self.runs[sid] = skip
            self.reporter.finished(Outcome(sid, skip.verdict, skip.message))
            return None
        uc = self.project.usecase(st.usecase).spec
        n_jobs = (os.cpu_count() or 1) if uc.infra.n_jobs == -1 else uc.infra.n_jobs
        job = StageJob(
            root=str(self.root),
            stage=st,
            usecase=uc,
            n_jobs=n_jobs,
            allowed_estimator_modules=self.project.config.allowed_estimator_modules,
            threads=thread_cap(uc.infra.n_jobs, self.parallel),
        )
        self.reporter.started(sid, "run")
        fut: Future[Any] = executor.submit(run_job, job)
        return fut

    def _cannot_run(self, st: Stage) -> _Run | None:
        """Why *st* cannot run (an input missing or corrupt, an upstream that did not run)."""
        for dep in st.deps:
            for rel, checks in self.inputs.items():
                if not (_under(dep, rel) or _under(rel, dep)):
                    continue
                bad = [c for c in checks if c.state != "ok"]
                if bad:
                    kind = "missing" if any(c.state == "missing" for c in bad) else "corrupt"
                    return _Run(f"{kind}-input", objects_message(bad))
        bad_up = [u for u in self.graph.upstream[st.id] if u in self.runs and not self.runs[u].ok]
        if bad_up:
            return _Run("blocked", f"upstream {', '.join(bad_up)} did not run to the end")
        for dep in st.deps:
            if any(_under(dep, o) for o in self.producer):
                continue
            if not (self.root / dep).exists():
                return _Run(
                    "missing-input",
                    f"{dep} is neither in git at this revision nor on the DVC remote",
                )
        return None

    def _complete(self, sid: str, fut: Future[Any]) -> None:
        try:
            result = fut.result()
        except Exception as exc:  # the worker process died (OOM kill, a crash in a library)
            self.runs[sid] = _Run("failed", f"worker failed: {type(exc).__name__}: {exc}")
            self.reporter.finished(Outcome(sid, "failed", self.runs[sid].message))
            return
        run = _Run("" if result.ok else "failed", result.message, result.ok, dict(result.outs))
        run.seconds = result.seconds
        self.runs[sid] = run
        self.reporter.finished(Outcome(sid, "ran" if result.ok else "failed", "", result.seconds))

    # -- judge --

    def verdicts(self) -> list[StageVerdict]:
        return [self._judge(sid) for sid in self.ids]

    def _judge(self, sid: str) -> StageVerdict:
        st = self.graph.stages[sid]
        run = self.runs.get(sid, _Run("blocked", "not run"))
        objects = [c for rel, cs in self.inputs.items() for c in cs if self._reads(st, rel)]
        objects += self.outputs[sid]
        verdict = StageVerdict(sid, run.verdict, run.message, run.seconds, objects=objects)
        verdict.notes = self._notes(st)
        if not run.ok:
            return verdict
        locked = self.locked[sid]
        for rel, recorded in locked.outs.items():
            verdict.outputs.append(self._compare_output(st, rel, recorded, run.outs.get(rel)))
        differing = [o for o in verdict.outputs if not o.match]
        bad_objects = [c for c in self.outputs[sid] if c.state != "ok"]
        if differing and all(o.within_tolerance for o in differing):
            verdict.verdict = "nondeterministic"
        elif differing:
            verdict.verdict = "diverged"
        else:
            verdict.verdict = "reproduced"
        verdict.message = "; ".join(o.detail for o in differing if o.detail)
        if bad_objects:
            kind = "missing" if any(c.state == "missing" for c in bad_objects) else "corrupt"
            if verdict.verdict != "reproduced":
                rerun = f"and the re-run {verdict.verdict}"
            elif kind == "corrupt":
                rerun = "the re-run reproduced dvc.lock: the stored copy was altered after apply"
            else:
                rerun = "the re-run reproduced dvc.lock: the stored copy is gone"
            verdict.message = f"{objects_message(bad_objects)} ({rerun})" + (
                f"; {verdict.message}" if verdict.message else ""
            )
            verdict.verdict = f"{kind}-output"
        return verdict

    def _reads(self, st: Stage, rel: str) -> bool:
        return any(_under(d, rel) or _under(rel, d) for d in st.deps)

    def _compare_output(
        self, st: Stage, rel: str, recorded: str, reproduced: str | None
    ) -> OutputCheck:
        if reproduced is None:
            return OutputCheck(rel, recorded, None, False, f"{rel} was not written by the re-run")
        if reproduced == recorded:
            return OutputCheck(rel, recorded, reproduced)
        change = f"{rel} differs ({recorded[:7]} -> {reproduced[:7]})"
        if rel.endswith(".json") and rel in self.recorded_json:
            try:
                now = json.loads((self.root / rel).read_text("utf-8"))
            except (OSError, ValueError):
                return OutputCheck(rel, recorded, reproduced, False, f"{change}: not JSON now")
            holds, diffs = compare_json(self.recorded_json[rel], now, self.tolerance)
            shown = ", ".join(diffs[:3]) + (
                f", ... ({len(diffs)} in all)" if len(diffs) > 3 else ""
            )
            if not diffs:
                shown = "same values, other formatting"
            return OutputCheck(rel, recorded, reproduced, holds, f"{change}: {shown}")
        holds, why = self._model_within(st)
        return OutputCheck(rel, recorded, reproduced, holds, f"{change}; {why}")

    def _model_within(self, st: Stage) -> tuple[bool, str]:
        """A non-JSON output (a model, a plot image) is tolerated when it comes from a fitted
        model (a train stage or downstream of one) and every metrics file downstream of its
        stage was re-produced within tolerance."""
        if not self._from_model(st.id):
            return False, "not derived from a fitted model, so it must reproduce exactly"
        metrics = self._metrics_downstream(st.id)
        if not metrics:
            return False, "no metrics file downstream to judge it by"
        for rel, producer in metrics:
            run = self.runs.get(producer)
            if run is None or not run.ok or rel not in run.outs:
                return False, f"{rel} was not re-produced"
            recorded = self.locked[producer].outs.get(rel)
            if run.outs[rel] == recorded:
                continue
            old = self.recorded_json.get(rel)
            try:
                new = json.loads((self.root / rel).read_text("utf-8"))
            except (OSError, ValueError):
                return False, f"{rel} is not JSON"
            if old is None or not compare_json(old, new, self.tolerance)[0]:
                return False, f"{rel} beyond tolerance {self.tolerance:g}"
        names = ", ".join(rel for rel, _ in metrics)
        return True, f"metrics within tolerance {self.tolerance:g} ({names})"

    def _from_model(self, sid: str) -> bool:
        seen: set[str] = set()
        stack = [sid]
        while stack:
            cur = stack.pop()
            if cur in seen:
                continue
            seen.add(cur)
            if self.graph.stages[cur].kind == "train":
                return True
            stack.extend(self.graph.upstream[cur])
        return False

    def _metrics_downstream(self, sid: str) -> list[tuple[str, str]]:
        """(metrics path, producing stage) of *sid* and every re-run stage downstream of it."""
        order = [sid]
        seen = {sid}
        for cur in order:
            for down in self.graph.downstream(cur):
                if down in self.locked and down not in seen:
                    seen.add(down)
                    order.append(down)
        return [(m, s) for s in order for m in self.graph.stages[s].metrics]

    def _notes(self, st: Stage) -> list[str]:
        """What the auditor should know besides the verdict."""
        notes = []
        locked = self.locked[st.id]
        if locked.cmd and locked.cmd != st.cmd:
            notes.append(f"recorded command `{locked.cmd}` differs from today's `{st.cmd}`")
        for dep, md5 in locked.deps.items():
            checks = self.inputs.get(dep)
            if checks and checks[0].md5 != md5:
                notes.append(
                    f"{dep}: this revision tracks {checks[0].md5[:7]} but dvc.lock recorded "
                    f"{md5[:7]} (the revision was not applied in sync)"
                )
        return notes


# --- the command --------------------------------------------------------------------------


def verify_directory(
    directory: Path,
    reporter: Reporter,
    *,
    rev: str = "HEAD",
    usecases: tuple[str, ...] = (),
    tolerance: float = 0.0,
    jobs: int | None = None,
) -> VerifyResult:
    """Check REV out into a scratch worktree, re-run its recorded stages, judge each."""
    from mlopsctl.compile.graph import compile_project
    from mlopsctl.integrations import git
    from mlopsctl.plan.state import read_state
    from mlopsctl.spec.loader import find_project_root, load_project

    if tolerance < 0 or math.isnan(tolerance):
        raise MlopsctlError("--tolerance must be a number >= 0")
    root = find_project_root(directory)
    repo = git.open_repo(root)
    top = Path(repo.working_tree_dir).resolve()
    sub = root.resolve().relative_to(top).as_posix()
    sub = "" if sub == "." else sub
    commit = resolve_commit(repo, rev)
    lock_path = f"{sub}/dvc.lock" if sub else "dvc.lock"
    if not has_file(repo, commit, lock_path):
        raise StateError(
            f"{rev} ({commit[:10]}) has no {lock_path}: nothing was applied at that revision"
        )
    reporter.info(f"checking out {rev} ({commit[:10]}) into a scratch worktree")
    with scratch_worktree(repo, commit) as tree:
        sroot = tree / sub if sub else tree
        project = load_project(sroot)
        project.require_usecases(usecases)
        graph = compile_project(project)
        if usecases:
            graph = graph.only(set(usecases))
        state = read_state(sroot)
        if not any(state.get(st.dvc_name) for st in graph):
            raise StateError(f"{rev} ({commit[:10]}) records no stage in {lock_path}")
        verified = set(graph.usecases())
        own = {
            remote: [name for name in names if name in verified]
            for remote, names in project.own_remotes().items()
            if verified.intersection(names)
        }
        store = open_remote(root, project.config.remote, tree.parent / "objects", own)
        verifier = Verifier(project, graph, state, store, tolerance, reporter)
        result = VerifyResult(rev, commit, store.name, tolerance)
        result.not_recorded = [sid for sid in graph.order if sid not in verifier.locked]
        verifier.fetch(tracked_sources(sroot))
        verifier.run(jobs if jobs is not None else (os.cpu_count() or 1))
        result.stages = verifier.verdicts() + _not_compiled(graph, state, usecases)
    return result


def _not_compiled(
    graph: Graph, state: AppliedState, usecases: tuple[str, ...]
) -> list[StageVerdict]:
    """dvc.lock entries that today's mlopsctl does not compile from REV's specs: nothing can
    re-run them, so they cannot be re-proved (a stage kind this version no longer has)."""
    compiled = {st.dvc_name for st in graph}
    out = []
    for name in state.stages:
        usecase, _, stage = name.partition("_")
        if name in compiled or (usecases and usecase not in usecases):
            continue
        message = "dvc.lock records this stage, but this mlopsctl compiles no such stage from REV"
        out.append(StageVerdict(f"{usecase}/{stage}", "failed", message))
    return out
