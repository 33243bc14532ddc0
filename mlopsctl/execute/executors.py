"""Executors: where stage jobs run. A tiny interface (submit a job, shut down), like Hamilton's.

``inline`` runs a job in this process (``--jobs 1``); ``local`` runs jobs in a process pool so
that independent stages run in parallel. A ``dask`` executor (dask.distributed Client) plugs in
here with the same two methods and is imported only when chosen.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable
from typing import Any, Protocol

from mlopsctl.errors import MlopsctlError


class Executor(Protocol):
    max_parallel: int

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]: ...

    def shutdown(self) -> None: ...


class InlineExecutor:
    """Runs each job at submit time, in this process."""

    max_parallel = 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        fut: cf.Future[Any] = cf.Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # the caller inspects the future, as with a pool
            fut.set_exception(exc)
        return fut

    def shutdown(self) -> None:
        pass


class LocalExecutor:
    """A process pool. forkserver: safe with the threads of the progress display."""

    def __init__(self, jobs: int) -> None:
        self.max_parallel = jobs
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["mlopsctl.execute.task"])
        self._pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx)

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        return self._pool.submit(fn, *args)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_executor(kind: str, jobs: int) -> Executor:
    if kind == "local":
        return InlineExecutor() if jobs <= 1 else LocalExecutor(jobs)
    raise MlopsctlError(f"executor '{kind}' is not available in this version of mlopsctl")
