"""Executors: where stage jobs run. A tiny interface (submit, shut down, cancel), like Hamilton's.

``inline`` runs a job in this process (``--jobs 1``); ``local`` runs jobs in a process pool so
that independent stages run in parallel; ``dask`` (``execute/dask_executor.py``) runs them as
tasks on a dask.distributed cluster and is imported only when chosen. :func:`executor_for`
picks them per use case (``infra.executor``, or ``apply --executor``); when use cases name
different executors or schedulers, :class:`RoutingExecutor` sends each stage to its use case's
(one client per scheduler).

Stopping: each pool worker leads its own process group, so that :meth:`LocalExecutor.cancel`
stops a worker and whatever its stage started (joblib workers, ...) with one ``killpg``. A custom
stage's command runs in a session of its own (see ``task.stop_command``), which the worker kills
before it dies. A worker also dies when the apply that started it is gone, even by SIGKILL.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from mlopsctl.errors import MlopsctlError
from mlopsctl.interrupts import deferred
from mlopsctl.spec.model import Infra

log = logging.getLogger(__name__)

#: What the built-in stages import, imported once by the pool's fork server (through
#: mlopsctl.execute.warm) so that every worker starts with them loaded (shared copy-on-write)
#: instead of each importing them again (~2 s of CPU per worker, paid on every apply).
WARM_MODULES = (
    "pandas",
    "pyarrow.parquet",
    "sklearn.compose",
    "sklearn.impute",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "mlopsctl.stages.ingest",
    "mlopsctl.stages.validate",
    "mlopsctl.stages.split",
    "mlopsctl.stages.train",
    "mlopsctl.stages.evaluate",
    "mlopsctl.stages.gate",
)

STOP_GRACE_SECONDS = 3.0  # a worker in Python code stops at once; one in C code gets SIGKILL


class Executor(Protocol):
    max_parallel: int

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]: ...

    def shutdown(self) -> None:
        """Wait for running jobs, then release the workers."""

    def cancel(self) -> None:
        """Stop every running job now (interrupted apply); what they started stops too."""


class InlineExecutor:
    """Runs each job at submit time, in this process."""

    max_parallel = 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        fut: cf.Future[Any] = cf.Future()
        try:
            fut.set_result(fn(*args))
        except Exception as exc:  # the caller inspects the future, as with a pool
            fut.set_exception(exc)
        # an interruption (KeyboardInterrupt) is not a job's result: it propagates
        return fut

    def shutdown(self) -> None:
        pass

    def cancel(self) -> None:
        pass  # the job ran in this process: the interruption already unwound it


def _stop_worker(signum: int = signal.SIGTERM, _frame: FrameType | None = None) -> None:
    """In a worker: kill the running custom command's session, then our own process group."""
    from mlopsctl.execute import task

    task.stop_command()
    os.killpg(0, signal.SIGKILL)


def _watch_parent(parent: int) -> None:
    """In a worker (a thread): stop when the apply process is gone, however it ended."""
    try:
        fd = os.pidfd_open(parent)
    except (AttributeError, OSError):  # no pidfd (old kernel): poll
        while True:
            time.sleep(0.5)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                break
    else:
        select.select([fd], [], [])  # readable when the process exits
    _stop_worker()


def _worker_init(parent: int) -> None:
    """First thing in each pool worker."""
    os.setpgid(0, 0)  # our own group: cancel() stops us and all we started with one killpg
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the apply process decides what a ^C means
    signal.signal(signal.SIGTERM, _stop_worker)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


class LocalExecutor:
    """A process pool. forkserver: safe with the threads of the progress display."""

    def __init__(self, jobs: int, warm: bool = False) -> None:
        """*warm*: the workers start with the built-in stages' libraries loaded (see
        :func:`warm_pool` for when that pays)."""
        self.max_parallel = jobs
        ctx = multiprocessing.get_context("forkserver")
        # warm: the server imports WARM_MODULES once (mlopsctl.execute.warm never raises: the
        # server stops at a preload error that is not an ImportError, and no worker would start)
        # server: the fork server exits at once when apply does (see mlopsctl.execute.server)
        preload = [
            "mlopsctl.execute.server",
            "mlopsctl.execute.task",
            *(["mlopsctl.execute.warm"] if warm else []),
        ]
        ctx.set_forkserver_preload(preload)
        self._pool = cf.ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=ctx,
            initializer=_worker_init,
            initargs=(os.getpid(),),
        )
        log.debug("local executor: a pool of up to %d worker processes", jobs)

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        return self._pool.submit(fn, *args)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def cancel(self) -> None:
        with deferred():  # a second ^C must not leave workers half-stopped
            self._cancel()

    def _cancel(self) -> None:
        # the pool's own private map of its workers: the only way to reach them
        workers = dict(getattr(self._pool, "_processes", None) or {})
        for pid in workers:  # SIGTERM: the worker kills its custom command's session, then itself
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in workers.values():
            proc.join(max(0.0, deadline - time.monotonic()))
        for pid in workers:  # a worker stuck in C code, and anything left in its group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        for proc in workers.values():
            proc.join(1.0)
        self._pool.shutdown(wait=True, cancel_futures=True)
        log.debug("local executor: stopped %d worker(s)", len(workers))


def warm_pool(stages: Iterable[tuple[str, str]]) -> bool:
    """Whether a local pool's fork server should import the stages' libraries up front, for
    the *stages* (use case, kind) that will run.

    Only when built-in stages of several use cases will run: they can run side by side, and
    their workers then share one import instead of each paying ~2 s of CPU for it. One use
    case's built-in stages form a chain that one worker at a time runs, importing what its
    stages need as they come (a re-run of the gate alone must not wait for scikit-learn).
    """
    return len({usecase for usecase, kind in stages if kind != "custom"}) > 1


def make_executor(kind: str, jobs: int, warm: bool = False) -> Executor:
    if kind == "local":
        return InlineExecutor() if jobs <= 1 else LocalExecutor(jobs, warm)
    raise MlopsctlError(f"executor '{kind}' is not available in this version of mlopsctl")


EXECUTORS = ("local", "dask")


def where(name: str, infra: Infra, override: str | None = None) -> str:
    """Where use case *name*'s stages run: ``local`` or its dask scheduler's address."""
    kind = override or infra.executor
    if kind == "local":
        return "local"
    if kind == "dask":
        if infra.dask is None:  # only by --executor dask on a use case without a cluster
            raise MlopsctlError(
                f"--executor dask: use case '{name}' names no dask cluster "
                "(infra.dask.scheduler, or the project's defaults.infra.dask)"
            )
        return infra.dask.scheduler
    raise MlopsctlError(f"unknown executor '{kind}' (one of: {', '.join(EXECUTORS)})")


class RoutingExecutor:
    """Several executors at once: each stage goes to the one its use case chose."""

    def __init__(self, parts: Mapping[str, Executor], route: Mapping[str, str]) -> None:
        self.parts = dict(parts)
        self.route = dict(route)  # use case -> key of parts
        self.max_parallel = sum(e.max_parallel for e in self.parts.values())

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        usecase = getattr(getattr(args[0], "usecase", None), "name", "") if args else ""
        return self.parts[self.route.get(usecase, "local")].submit(fn, *args)

    def shutdown(self) -> None:
        for part in self.parts.values():
            part.shutdown()

    def cancel(self) -> None:
        for part in self.parts.values():
            part.cancel()


def executor_for(
    infra: Mapping[str, Infra],
    jobs: int,
    root: Path,
    override: str | None = None,
    warm: bool = False,
) -> Executor:
    """The executor for use cases *infra* (name -> its infra) whose stages are to run.

    ``local``: a process pool of *jobs* workers (inline for one). ``dask``: a client of each
    scheduler the use cases name, connected and checked before any stage runs.
    """
    route = {name: where(name, inf, override) for name, inf in infra.items()}
    schedulers = sorted(set(route.values()) - {"local"})
    if not schedulers:
        return make_executor("local", jobs, warm)
    from mlopsctl.execute.dask_executor import DaskExecutor

    # one client per (scheduler, storage URL): use cases on one cluster may stage differently
    storage = {
        name: (inf.dask.storage or "") if inf.dask is not None else ""
        for name, inf in infra.items()
    }
    route = {
        name: f"{to} storage={storage[name]}" if to != "local" and storage[name] else to
        for name, to in route.items()
    }
    schedulers = sorted(set(route.values()) - {"local"})
    parts: dict[str, Executor] = {}
    try:
        for key in schedulers:
            users = [name for name in infra if route[name] == key]
            dasks = [infra[name].dask for name in users]
            wanted = [d.n_workers or 0 for d in dasks if d is not None]
            address = where(users[0], infra[users[0]], override)
            parts[key] = DaskExecutor(
                address, root, n_workers=max(wanted, default=0), storage=storage[users[0]] or None
            )
        if "local" in route.values():
            parts["local"] = make_executor("local", jobs, warm)
    except BaseException:
        for part in parts.values():
            part.shutdown()
        raise
    if len(parts) == 1:
        return next(iter(parts.values()))
    return RoutingExecutor(parts, route)
