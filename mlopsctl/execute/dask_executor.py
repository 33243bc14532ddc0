"""The dask executor: each stage a task on a dask.distributed cluster (``infra.executor: dask``).

Imported only when a use case (or ``apply --executor dask``) chooses it; dask is the optional
extra ``mlopsctl[dask]``. The executor has the local pool's methods (submit, shutdown, cancel),
so the apply loop submits a stage when its upstream finished, shows the same progress and keeps
the same failure policy whichever runs it.

What runs where:

* a worker runs the stage (:func:`run_on_worker` -> ``task.run_job``) and writes its outputs
  only into a staging directory that the applying process made (``StageJob.staging``); it
  returns the stage's result;
* the applying process lands the staged outputs (atomic renames), hashes them, journals and
  records them. State (dvc.lock, ``.dvc`` files, the DVC cache, git, the push) is never
  written by a worker. A custom stage's command runs in the repository on the worker, as DVC
  would run it.

With ``infra.dask.storage`` (an fsspec URL) workers never see the repository: the applying
process uploads each stage's inputs there, the worker runs the stage in a private workspace and
uploads its outputs, the applying process downloads and checks them into its staging directory
and lands them as above (``execute/storage.py``).

Before any stage runs the executor checks that the cluster can do the work: the scheduler
answers within :data:`CONNECT_TIMEOUT`, every worker sees the repository at the same path
(shared storage: a token file written here must be readable there; with ``infra.dask.storage``
a token object written to the URL must be), and every worker runs the
same Python, mlopsctl and library versions as this process (the environment fingerprint of
``compile/environment.py``, which is part of train's command). Each fails with one message.

A worker that dies mid-stage is the scheduler's business: it reschedules the task on another
worker (up to ``distributed.scheduler.allowed-failures`` times), and the stage then writes into
its staging directory afresh; past that, the stage fails with ``KilledWorker``. Nothing the
killed attempt wrote has landed.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import logging
import os
import re
import secrets
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlopsctl.errors import MlopsctlError
from mlopsctl.execute import task
from mlopsctl.fsutil import atomic_write
from mlopsctl.interrupts import deferred
from mlopsctl.plan.hashing import HashCache

log = logging.getLogger(__name__)

#: seconds to reach the scheduler: an unreachable one is one clear error, well within 10 s
CONNECT_TIMEOUT = float(os.environ.get("MLOPSCTL_DASK_CONNECT_TIMEOUT", "4"))
#: seconds to wait for ``infra.dask.n_workers`` workers to join
WORKERS_TIMEOUT = 60.0
INSTALL_HINT = "pip install 'mlopsctl[dask]'"
_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def import_distributed() -> Any:
    """dask.distributed, or one clear error naming the extra that installs it."""
    try:
        import distributed
    except ImportError as exc:
        raise MlopsctlError(
            f"infra.executor: dask needs dask.distributed, which is not installed ({exc.name} is "
            f"missing): {INSTALL_HINT}"
        ) from exc
    return distributed


def resolve_scheduler(text: str) -> str:
    """``infra.dask.scheduler`` with its ``${env:NAME}`` references read (never written out)."""
    return read_env_refs(text, "infra.dask.scheduler", "the scheduler address")


def read_env_refs(text: str, key: str, what: str) -> str:
    """*text* with its ``${env:NAME}`` references read; an unset one is an error naming *key*."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise MlopsctlError(
                f"{key}: environment variable {name} is not set ({what} {text!r} uses it)"
            )
        return os.environ[name]

    return _ENV_REF.sub(value, text)


# --- run on a worker -----------------------------------------------------------------------


class StageStopped(BaseException):
    """Raised in a worker's thread running a stage whose apply was interrupted (``stop_stages``).

    A BaseException: the stage's own error handling (``task.run_job`` reports an Exception as
    a failed stage) must not swallow it.
    """


#: on a worker: the thread running each of our stage tasks, by task key; and the keys that
#: ``stop_stages`` stopped (asked by tests and ``--debug`` through ``stopped_stages``)
_RUNNING: dict[str, int] = {}
_TARGETED: set[str] = set()
_STOPPED: collections.deque[str] = collections.deque(maxlen=1000)  # a long-lived worker
#: keys ``stop_stages`` was asked to stop before they reached :func:`stoppable` here (a task
#: the worker had begun to execute, still unpickling or importing): they stop as they enter
_CANCELLED: collections.deque[str] = collections.deque(maxlen=1000)
_RUNNING_LOCK = threading.Lock()


def run_on_worker(
    fn: Callable[[task.StageJob], task.StageResult],
    job: task.StageJob,
    host_threads: dict[str, int],
    storage: str = "",
    inputs: dict[str, str] | None = None,
    progress_topic: str = "",
) -> Any:
    """On a dask worker: run *job* with its threads capped to its share of this host's cores.

    The workers of one host (``dask worker --nworkers N``, a LocalCluster) run
    *host_threads*[host] tasks at once between them, so one task may use ``cores // that``
    threads: the host's workers times their threads times each task's threads never exceed
    its cores. With a *storage* URL the job runs in a private workspace holding its *inputs*
    (``storage.run_in_workspace``): ``job.root`` and ``job.staging`` are never touched.
    """
    from distributed import get_worker

    worker = get_worker()
    nthreads = int(getattr(worker.state, "nthreads", 1) or 1)
    parallel = max(nthreads, host_threads.get(host_of(worker.address), nthreads))
    job = replace(job, threads=task.thread_cap(job.n_jobs, parallel))
    with stoppable(str(worker.get_current_task())):
        if storage:
            from mlopsctl.execute.storage import run_in_workspace

            return run_in_workspace(fn, job, storage, inputs or {}, progress_topic)
        if job.staging:  # a retry after a killed worker starts from an empty staging directory
            shutil.rmtree(job.staging, ignore_errors=True)
            Path(job.staging).mkdir(parents=True, exist_ok=True)
        return fn(job)


@contextlib.contextmanager
def stoppable(key: str) -> Iterator[None]:
    """Within the block, this thread runs the stage task *key*: ``stop_stages`` may stop it
    (one asked to stop before it got here stops at once, without running)."""
    with _RUNNING_LOCK:
        if key in _CANCELLED:
            _CANCELLED.remove(key)
            _STOPPED.append(key)
            raise StageStopped(key)
        _RUNNING[key] = threading.get_ident()
    try:
        yield
    except StageStopped:
        _STOPPED.append(key)
        raise
    finally:
        with _RUNNING_LOCK:
            del _RUNNING[key]
            if key in _TARGETED:  # asked to stop as it finished: the exception must not
                _TARGETED.discard(key)  # fire later, in dask's code around the next task
                _set_async_exc(threading.get_ident(), None)


def stop_stages(keys: list[str]) -> list[str]:
    """On a worker: stop the threads running these stage tasks (an interrupted apply); the
    keys it stopped.

    Dask cannot stop a task's thread; CPython can raise an exception in it
    (``PyThreadState_SetAsyncExc``), which it does at the thread's next Python instruction: a
    fit stops at its next iteration, a wait for tuning's CV fits at once (a long C loop runs on
    to its end first). The stage wrote only into its staging directory, which apply discards.
    Only our own keys are stopped: another apply's stages on the same cluster run on. A key not
    running here yet is remembered: a task the worker was starting as the apply stopped (its
    function still arriving) must not then run a whole stage nobody waits for.
    """
    stopped = []
    with _RUNNING_LOCK:
        for key in keys:
            ident = _RUNNING.get(key)
            if ident is None and key not in _CANCELLED:
                _CANCELLED.append(key)
            stop = ident is not None and key not in _TARGETED
            if stop and _set_async_exc(ident or 0, StageStopped) == 1:
                _TARGETED.add(key)
                stopped.append(key)
    return stopped


def running_stages() -> list[str]:
    """On a worker: the keys of the stage tasks running here now."""
    with _RUNNING_LOCK:
        return list(_RUNNING)


def stopped_stages() -> list[str]:
    """On a worker: the keys of the stage tasks ``stop_stages`` stopped here."""
    return list(_STOPPED)


def _set_async_exc(ident: int, exc: type[BaseException] | None) -> int:
    """Raise *exc* in thread *ident* at its next instruction (None: withdraw a pending one)."""
    import ctypes

    arg = ctypes.py_object(exc) if exc is not None else None
    return int(ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), arg))


def host_of(address: str) -> str:
    """``tcp://10.0.0.7:39113`` -> ``10.0.0.7``."""
    return urlsplit(address).hostname or address


def worker_environment() -> dict[str, str]:
    """On a worker: its environment fingerprint (Python, mlopsctl and library versions)."""
    from mlopsctl.compile.environment import environment

    return dict(environment())


def worker_identity() -> tuple[dict[str, str], tuple[str, list[str]]]:
    """On a worker: :func:`worker_environment` and :func:`code_state`, in one round trip."""
    return worker_environment(), code_state()


def code_state() -> tuple[str, list[str]]:
    """Here or on a worker: the digest of mlopsctl's source files on disk, and those changed
    since this process imported mlopsctl (so not the code it runs).

    The version check compares version numbers; this compares the code: another build of the
    same version, or a worker that kept running through an upgrade (the modules it imported
    are the old ones), is refused too.
    """
    import hashlib

    import mlopsctl

    package = Path(mlopsctl.__file__).parent
    digest = hashlib.sha256()
    changed = []
    for path in sorted(package.rglob("*")):
        if path.suffix not in (".py", ".json") or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(package).as_posix()
        digest.update(rel.encode("utf-8") + b"\0" + path.read_bytes() + b"\0")
        if path.stat().st_mtime > mlopsctl.IMPORTED_AT:
            changed.append(rel)
    return digest.hexdigest(), changed


def sees_token(path: str, token: str) -> str:
    """On a worker: "" when *path* holds *token* (it sees our repository), else what it saw."""
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    return "" if text == token else f"{path} holds other content"


def stop_command() -> None:
    """On a worker: kill the custom command it runs for us (an interrupted apply)."""
    task.stop_command()


# --- the executor ----------------------------------------------------------------------------


class DaskExecutor:
    """Stages as tasks on the dask cluster at *scheduler*; the checks of the module doc first."""

    def __init__(
        self,
        scheduler: str,
        root: Path,
        n_workers: int | None = None,
        storage: str | None = None,
    ) -> None:
        distributed = import_distributed()
        self.address = resolve_scheduler(scheduler)
        self.root = root
        self.storage: Any = None  # storage.Storage when inputs/outputs move through a URL
        self._hashes: HashCache | None = None  # read only: the apply's own cache saves
        if storage:
            from mlopsctl.execute.storage import Storage, resolve_storage

            self.storage = Storage(resolve_storage(storage))
            self._hashes = HashCache(root)
        _quiet_dask_logs()
        try:
            self._client = distributed.Client(
                self.address, timeout=CONNECT_TIMEOUT, set_as_default=False
            )
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            log.debug("dask connect failed: %s", exc)
            raise MlopsctlError(
                f"cannot reach the dask scheduler {self.address} (infra.dask.scheduler): no "
                f"answer within {CONNECT_TIMEOUT:g}s; no stage ran"
            ) from None
        try:
            self.max_parallel = self._check_workers(n_workers)
            self._check_environment()
            if self.storage is None:
                self._check_shared_storage()
            else:
                self._check_storage_url()
        except BaseException:
            self._client.close()
            raise
        self._progress_topic = ""  # storage mode: the workers relay tuning's progress on it
        if self.storage is not None:
            from mlopsctl.execute.storage import land_progress

            self._progress_topic = f"mlopsctl-progress-{uuid.uuid4().hex}"
            self._client.subscribe_topic(
                self._progress_topic, lambda event: land_progress(root, event[1])
            )
        self._futures: set[Any] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        # one thread per stage in flight waits for its task, then lands its outputs here
        self._threads = cf.ThreadPoolExecutor(
            max_workers=self.max_parallel, thread_name_prefix="mlopsctl-dask"
        )
        log.debug("dask executor: %s, %d worker threads", self.address, self.max_parallel)

    # -- start-up checks

    def _check_workers(self, n_workers: int | None) -> int:
        if n_workers:
            try:
                self._client.wait_for_workers(n_workers, timeout=WORKERS_TIMEOUT)
            except (TimeoutError, OSError) as exc:
                raise MlopsctlError(
                    f"dask scheduler {self.address}: fewer than infra.dask.n_workers={n_workers} "
                    f"workers joined within {WORKERS_TIMEOUT:g}s ({first_line(exc)})"
                ) from None
        workers = self._client.scheduler_info(n_workers=-1).get("workers", {})
        if not workers:
            raise MlopsctlError(f"dask scheduler {self.address} has no workers; no stage ran")
        self._host_threads: dict[str, int] = {}  # worker threads per host, for the thread cap
        for address, info in workers.items():
            host = host_of(address)
            self._host_threads[host] = self._host_threads.get(host, 0) + int(info["nthreads"])
        return max(1, sum(self._host_threads.values()))

    def _check_environment(self) -> None:
        from mlopsctl.compile.environment import environment

        here = environment()
        try:
            identities: dict[str, tuple[dict[str, str], tuple[str, list[str]]]] = self._client.run(
                worker_identity
            )
        except Exception as exc:  # the worker cannot even import mlopsctl (or this version)
            raise MlopsctlError(
                f"dask workers at {self.address} cannot run mlopsctl: "
                f"{type(exc).__name__}: {first_line(exc)}; install the same mlopsctl there "
                f"({INSTALL_HINT})"
            ) from None
        theirs = {worker: env for worker, (env, _) in identities.items()}
        problems = [
            f"{name} {here.get(name, 'missing')} here, {env.get(name, 'missing')} on {worker}"
            for worker, env in sorted(theirs.items())
            for name in sorted(set(here) | set(env))
            if here.get(name) != env.get(name)
        ]
        if problems:
            raise MlopsctlError(
                f"dask workers at {self.address} run other versions than this apply (a model "
                "trained there would not be the one the plan pins): "
                + "; ".join(problems)
                + ". Install the same versions on the workers."
            )
        self._check_code({worker: code for worker, (_, code) in identities.items()})

    def _check_code(self, theirs: dict[str, tuple[str, list[str]]]) -> None:
        """The same mlopsctl code on every worker, and loaded from the files they have now."""
        digest, _ = code_state()
        problems = []
        for worker, (their_digest, changed) in sorted(theirs.items()):
            if changed:
                shown = ", ".join(changed[:3]) + (", ..." if len(changed) > 3 else "")
                problems.append(
                    f"{worker} imported mlopsctl before {len(changed)} of its files changed "
                    f"({shown}): restart it"
                )
            elif their_digest != digest:
                problems.append(
                    f"{worker} has other mlopsctl code (sha256 {their_digest[:12]} there, "
                    f"{digest[:12]} here)"
                )
        if problems:
            raise MlopsctlError(
                f"dask workers at {self.address} do not run this apply's mlopsctl code: "
                + "; ".join(problems)
                + ". Install the same build on the workers and restart them (docs/scale-out.md)."
            )

    def _check_shared_storage(self) -> None:
        token = secrets.token_hex(16)
        path = self.root / ".mlopsctl" / f"dask-check-{token[:8]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, token)
        try:
            seen: dict[str, str] = self._client.run(sees_token, str(path), token)
        finally:
            path.unlink(missing_ok=True)
        _refuse_blind(
            seen,
            f"dask workers at {self.address} do not see this repository at {self.root}",
            "Workers need it at the same path on shared storage (docs/scale-out.md).",
        )

    def _check_storage_url(self) -> None:
        from mlopsctl.execute.storage import sees_storage

        store = self.storage
        token = secrets.token_hex(16)
        try:
            path = store.write_text(f"dask-check-{token[:8]}", token)
        except Exception as exc:  # any backend's error (credentials, network, permissions)
            raise MlopsctlError(
                f"cannot write to infra.dask.storage {store.url} from this machine: "
                f"{type(exc).__name__}: {first_line(exc)}"
            ) from None
        try:
            seen: dict[str, str] = self._client.run(sees_storage, store.url, path, token)
        finally:
            with contextlib.suppress(Exception):
                store.remove(path)
        _refuse_blind(
            seen,
            f"dask workers at {self.address} cannot read infra.dask.storage {store.url}",
            "Workers need access (credentials) to it (docs/scale-out.md).",
        )

    # -- the Executor interface

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        return self._threads.submit(self._run, fn, args)

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        """In a thread of this process: run one task, then land what it staged."""
        job = args[0] if len(args) == 1 and isinstance(args[0], task.StageJob) else None
        if job is None:
            return self._wait(self._client.submit(fn, *args, pure=False))
        if job.stage.kind != "custom" or self.storage is not None:
            job = replace(job, staging=str(task.make_staging(self.root, job.stage)))
        try:
            key = f"mlopsctl-{job.stage.dvc_name}-{uuid.uuid4().hex[:8]}"
            if self.storage is None:
                submitted = self._client.submit(
                    run_on_worker, fn, job, self._host_threads, key=key, pure=False
                )
                return task.land_staged(job, self._wait(submitted))
            return self._run_via_storage(fn, job, key)
        except BaseException:
            if job.staging:
                shutil.rmtree(job.staging, ignore_errors=True)
            raise

    def _run_via_storage(self, fn: Callable[..., Any], job: task.StageJob, key: str) -> Any:
        """Upload *job*'s inputs, run it in a worker's workspace, fetch and check its outputs."""
        from mlopsctl.execute import storage
        from mlopsctl.integrations import git

        if job.stage.kind == "deploy":
            job = replace(job, git_head=git.head_sha(self.root) or "")
        try:
            inputs = storage.upload_inputs(self.storage, self.root, job, self._hashes)
        except Exception as exc:  # any backend's error (credentials, network, a full disk)
            message = exc.message if isinstance(exc, MlopsctlError) else first_line(exc)
            shutil.rmtree(job.staging, ignore_errors=True)
            return task.StageResult(
                job.stage.id,
                False,
                f"cannot upload its inputs to {self.storage.url}: {message}",
            )
        submitted = self._client.submit(
            run_on_worker,
            fn,
            job,
            self._host_threads,
            self.storage.url,
            inputs,
            self._progress_topic,
            key=key,
            pure=False,
        )
        result = storage.fetch_outputs(self.storage, job, self._wait(submitted))
        return task.land_staged(job, result)

    def _wait(self, future: Any) -> Any:
        with self._lock:
            self._futures.add(future)
        try:
            while True:  # in slices: a cancelled apply must not leave this thread waiting
                if self._stopping.is_set():
                    raise cf.CancelledError("apply was interrupted")
                try:
                    return future.result(timeout=0.5)
                except TimeoutError:
                    continue
        finally:
            with self._lock:
                self._futures.discard(future)

    def shutdown(self) -> None:
        self._threads.shutdown(wait=not self._stopping.is_set(), cancel_futures=True)
        self._close()

    def cancel(self) -> None:
        with deferred():  # a second ^C must not leave the cluster half-told
            with self._lock:  # before the waiting threads see the flag and let go of theirs
                futures = list(self._futures)
            self._stopping.set()
            if futures:
                with contextlib.suppress(Exception):
                    self._client.cancel(futures, force=True)
                keys = [str(f.key) for f in futures]
                with contextlib.suppress(Exception):
                    stopped = self._client.run(stop_stages, keys, wait=True)
                    log.debug("dask executor: stopped running stages %s", stopped)
                with contextlib.suppress(Exception):  # a custom command's process
                    self._client.run(stop_command, wait=True)
            self._close()
            self._threads.shutdown(wait=False, cancel_futures=True)
            log.debug("dask executor: cancelled %d task(s)", len(futures))

    def _close(self) -> None:
        if self._progress_topic:
            with contextlib.suppress(Exception):
                self._client.unsubscribe_topic(self._progress_topic)
        with contextlib.suppress(Exception):
            self._client.close(timeout=CONNECT_TIMEOUT)


def _quiet_dask_logs() -> None:
    """distributed logs every failed connect attempt; our error says it once (``--debug``
    keeps them)."""
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        for name in ("distributed", "distributed.client", "distributed.comm.core"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def _refuse_blind(seen: dict[str, str], problem: str, remedy: str) -> None:
    """One error naming each worker that failed a start-up check (*seen*: worker -> why)."""
    blind = {worker: why for worker, why in sorted(seen.items()) if why}
    if blind:
        raise MlopsctlError(
            f"{problem}: " + "; ".join(f"{w}: {why}" for w, why in blind.items()) + f". {remedy}"
        )


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
