"""One stage run: the single unit of work that every executor calls (in a worker or inline).

Built-in stages write into a staging directory; their outputs are moved into place only when
the stage succeeds (or when its error says the outputs describe the failure, as a failed gate's
verdict does). Custom stages run their shell command in the repository root, as DVC would.
Either way the result carries the md5 of every output as it landed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlopsctl import fault
from mlopsctl.compile.graph import Stage
from mlopsctl.compile.layout import UseCasePaths
from mlopsctl.errors import MlopsctlError, StageFailedError
from mlopsctl.plan.hashing import file_md5
from mlopsctl.spec.model import UseCase
from mlopsctl.spec.paths import inside_repo

LOG_DIR = ".mlopsctl/logs"

_command: subprocess.Popen[bytes] | None = None  # the custom stage's command running now


def stop_command() -> None:
    """Kill the running custom command and all it started (its session); safe in a handler."""
    if _command is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(_command.pid, signal.SIGKILL)


@dataclass(frozen=True)
class StageResult:
    stage_id: str
    ok: bool
    message: str = ""
    outs: dict[str, str] = field(default_factory=dict)  # path -> md5 of what landed
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    log: str = ""  # repo-relative path of the stage's log (custom stages)
    kind: str = ""  # "ran" | "restored"
    started: float = 0.0  # wall-clock start (epoch seconds), to show what ran in parallel
    #: with ``StageJob.staging``: what the caller must land from it ("all", "partial" or "")
    staged: str = ""


@dataclass(frozen=True)
class StageJob:
    """Everything a worker needs to run one stage: picklable, no open handles."""

    root: str
    stage: Stage
    usecase: UseCase
    n_jobs: int = 1
    allowed_estimator_modules: tuple[str, ...] = ("sklearn",)
    #: the most threads the stage may use (see :func:`thread_cap`); 0: ``min(n_jobs, cores)``
    threads: int = 0
    #: a staging directory the caller made: the stage writes its outputs there and lands
    #: nothing; the caller lands them (:func:`land_staged`). A remote worker (dask) then never
    #: writes into the workspace, so a worker killed mid-stage leaves nothing half-landed.
    staging: str = ""
    #: the repository's HEAD, for a stage run away from the repository (dask with
    #: ``infra.dask.storage``): deploy records it in its bundle; "": ask git in ``root``
    git_head: str = ""

    def __post_init__(self) -> None:
        # The use case travels without its custom stages' definitions: no stage reads them (a
        # job carries its own stage), and with them every job grew with the use case (at
        # 1,000 custom stages 104 KB and ~4 ms to pickle and unpickle per job: quadratic).
        if self.usecase.stages:
            object.__setattr__(self, "usecase", replace(self.usecase, stages=()))


#: what OpenMP, MKL, OpenBLAS, BLIS, Accelerate and numexpr read to size their thread pools
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def cores() -> int:
    """The CPUs this process may run on (its affinity, which containers and taskset narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def thread_cap(n_jobs: int, parallel: int = 1) -> int:
    """The threads one stage may use: its ``infra.n_jobs`` (-1: every core), and no more than
    its share of the cores when *parallel* stages run at once, so that parallel stages times
    their threads never exceed the cores."""
    n = cores()
    wanted = n if n_jobs < 1 else n_jobs
    return max(1, min(wanted, n // max(1, parallel)))


def run_job(job: StageJob) -> StageResult:
    """Run one stage with its thread pools capped; never raises for a stage failure."""
    threads = job.threads or thread_cap(job.n_jobs)
    try:
        with limited_threads(threads):
            return _run_job(job, threads)
    finally:
        _stop_joblib_workers()


@contextlib.contextmanager
def limited_threads(threads: int) -> Iterator[None]:
    """Cap every thread pool of this process and of the processes it starts at *threads*.

    The environment variables size the pools of libraries loaded from now on (and of custom
    stages' commands and joblib's workers, which inherit them); threadpoolctl resizes the pools
    of libraries already loaded, as they are in a pool worker that ran a stage before. Both are
    restored afterwards.
    """
    saved = {var: os.environ.get(var) for var in THREAD_VARS}
    os.environ.update({var: str(threads) for var in THREAD_VARS})
    try:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads):
            yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def pool_threads() -> int:
    """The most threads any loaded OpenMP/BLAS pool of this process would use now."""
    from threadpoolctl import threadpool_info

    return max((int(info["num_threads"]) for info in threadpool_info()), default=1)


def _stop_joblib_workers() -> None:
    """Stop joblib's reusable worker pool (GridSearchCV and friends start one).

    Its idle workers otherwise linger for minutes, and a pool worker that owns them cannot exit
    when apply shuts the pool down.
    """
    import sys

    if "joblib" not in sys.modules:
        return
    from joblib.externals.loky import reusable_executor

    executor = getattr(reusable_executor, "_executor", None)
    if executor is None:
        return
    # joblib's MemmappingExecutor.terminate also deletes its /dev/shm folder (a pool worker
    # exits without running atexit hooks, which would leave it to a "leaked folder" warning)
    terminate = getattr(executor, "terminate", None)
    if terminate is not None:
        terminate(kill_workers=False)
    else:
        executor.shutdown(wait=True)


def _run_job(job: StageJob, threads: int) -> StageResult:
    start = time.perf_counter()
    started = time.time()
    root = Path(job.root)
    st = job.stage
    try:
        if st.kind == "custom":
            summary, log = _run_custom(root, st), f"{LOG_DIR}/{st.dvc_name}.log"
        else:
            summary, log = _run_builtin(job, threads), ""
            # measured, not assumed: what the stage's OpenMP/BLAS pools were allowed to use
            summary = {**summary, "threads": pool_threads()}
            if job.staging:  # the caller lands the outputs, then hashes them
                secs = time.perf_counter() - start
                return StageResult(st.id, True, "", {}, summary, secs, log, "ran", started, "all")
        outs = _hash_outs(root, st)
        secs = time.perf_counter() - start
        return StageResult(st.id, True, "", outs, summary, secs, log, "ran", started)
    except StageFailedError as exc:
        staged = "partial" if exc.outputs_valid and job.staging and st.kind != "custom" else ""
        landed = exc.outputs_valid and not staged
        outs = _hash_outs(root, st, missing_ok=True) if landed else {}
        secs = time.perf_counter() - start
        return StageResult(
            st.id, False, exc.message, outs, {}, secs, started=started, staged=staged
        )
    except MlopsctlError as exc:
        return StageResult(
            st.id, False, exc.message, {}, {}, time.perf_counter() - start, started=started
        )
    except Exception as exc:  # a bug in a stage, or an estimator blowing up: report it, go on
        tb = traceback.format_exc(limit=8)
        message = f"{type(exc).__name__}: {exc}\n{tb}"
        return StageResult(
            st.id, False, message, {}, {}, time.perf_counter() - start, started=started
        )


def _hash_outs(root: Path, st: Stage, missing_ok: bool = False) -> dict[str, str]:
    outs = {}
    for rel in st.all_outs:
        path = root / rel
        if path.is_file():
            outs[rel] = file_md5(path)
        elif path.is_dir():
            from mlopsctl.plan.hashing import HashCache

            outs[rel] = HashCache(root).md5(rel) or ""
        elif not missing_ok:
            raise StageFailedError(f"{st.id} did not write its output {rel}")
    return outs


def _run_builtin(job: StageJob, threads: int) -> dict[str, Any]:
    from mlopsctl.stages import stage_function
    from mlopsctl.stages.base import StageContext

    root = Path(job.root)
    st = job.stage
    staging = Path(job.staging) if job.staging else make_staging(root, st)
    ctx = StageContext(
        root=root,
        usecase=job.usecase,
        paths=UseCasePaths(job.usecase.name),
        staging=staging,
        n_jobs=threads,  # the estimator's and the search's n_jobs: never above the cap
        allowed_estimator_modules=job.allowed_estimator_modules,
        git_head=job.git_head or None,
    )
    if job.staging:  # the caller lands (and removes) the staging directory
        return stage_function(st.kind)(ctx)
    try:
        try:
            summary = stage_function(st.kind)(ctx)
        except StageFailedError as exc:
            if exc.outputs_valid:
                _land(staging, root, st, partial=True)
            raise
        _land(staging, root, st, partial=False)
        return summary
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def make_staging(root: Path, st: Stage) -> Path:
    """A fresh staging directory for *st* under ``.mlopsctl/tmp`` (apply's pre-flight clears it)."""
    tmp_root = root / ".mlopsctl" / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{st.dvc_name}.", dir=tmp_root))


def land_staged(job: StageJob, result: StageResult) -> StageResult:
    """In the applying process: land what a worker staged in ``job.staging``, hash it.

    The worker wrote only below the staging directory; the atomic renames into the workspace
    happen here, so a worker that dies mid-stage leaves the workspace as it was.
    """
    root, st = Path(job.root), job.stage
    try:
        if result.staged:
            _land(Path(job.staging), root, st, partial=result.staged == "partial")
            outs = _hash_outs(root, st, missing_ok=result.staged == "partial")
            return replace(result, outs=outs, staged="")
        return result
    except MlopsctlError as exc:
        return replace(result, ok=False, message=exc.message, outs={}, staged="")
    finally:
        if job.staging:
            shutil.rmtree(job.staging, ignore_errors=True)


def _land(staging: Path, root: Path, st: Stage, *, partial: bool) -> None:
    """Move the staged outputs into place (each with an atomic rename)."""
    missing = [rel for rel in st.all_outs if not (staging / rel).exists()]
    if missing and not partial:
        raise StageFailedError(f"{st.id} did not write " + ", ".join(missing))
    # every destination (and the staged file) must resolve inside the repository before the first
    # move: a committed `reports/NAME -> /elsewhere` is refused, and nothing lands at all
    staged = [rel for rel in st.all_outs if (staging / rel).exists()]
    for rel in staged:
        inside_repo(root, rel)
        inside_repo(root, os.path.relpath(staging / rel, root))
    for rel in staged:
        src = staging / rel
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        os.replace(src, dst)
        fault.point("stage-running")  # some outputs landed, others not yet


def _run_custom(root: Path, st: Stage) -> dict[str, Any]:
    unset = [name for name in st.env_vars if name not in os.environ]
    if unset:
        raise StageFailedError(
            f"{st.id}: environment variable{'s' if len(unset) > 1 else ''} "
            + ", ".join(unset)
            + " not set (its command uses ${env:NAME})"
        )
    for rel in (*st.all_outs, f"{LOG_DIR}/{st.dvc_name}.log"):
        inside_repo(root, rel)  # nothing is removed until every output is known to be inside
    # Like DVC, remove declared outputs first, so that a command that fails to write one is caught.
    for rel in st.all_outs:
        p = root / rel
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
    log_path = root / LOG_DIR / f"{st.dvc_name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    global _command
    with log_path.open("wb") as log:
        # a session of its own, so that an interrupted apply can stop it and all it started
        _command = proc = subprocess.Popen(
            st.cmd,
            shell=True,
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait()
        except BaseException:
            stop_command()
            proc.wait()
            raise
        finally:
            _command = None
    if proc.returncode != 0:
        tail = log_path.read_text("utf-8", errors="replace").strip().splitlines()[-10:]
        detail = ("\n" + "\n".join(f"    {line}" for line in tail)) if tail else ""
        raise StageFailedError(
            f"command `{st.cmd}` exited with {proc.returncode} "
            f"(log: {LOG_DIR}/{st.dvc_name}.log){detail}"
        )
    return {"exit_code": 0}
