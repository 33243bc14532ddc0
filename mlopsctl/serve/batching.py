"""Adaptive micro-batching: concurrent requests share one predict call.

Requests queue up; one worker thread predicts. When it is idle, a request is predicted at once
(no added latency for a lone client). While it is busy, the requests that arrive wait and are
then taken together, up to ``max_rows`` rows, so the batch size follows the load by itself:
one predict call (one DataFrame, one preprocessing pass) serves many requests. This is the
"natural" batching that BentoML's CorkDispatcher refines with a cost model; without a waiting
window there is nothing to tune, and a request is never held back while the model is free.

Each row's result equals predicting it alone (see :func:`mlopsctl.stages.scoring.predict`). If
a batch fails, its requests are retried one by one, so a bad request only fails itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

Rows = list[dict[str, Any]]
Predict = Callable[[Rows], list[Any]]


@dataclass
class _Pending:
    rows: Rows
    future: asyncio.Future[list[Any]]


class MicroBatcher:
    """Queue concurrent ``submit`` calls into batched calls of *predict* (rows -> results)."""

    def __init__(self, predict: Predict, max_rows: int = 256) -> None:
        self._predict = predict
        self.max_rows = max_rows
        self._queue: deque[_Pending] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._busy = False
        self.batches = 0
        self.rows = 0

    async def submit(self, rows: Rows) -> list[Any]:
        """The results for *rows*, one per row, from a (possibly shared) predict call."""
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run())
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._queue.append(_Pending(rows, future))
        assert self._wake is not None
        self._wake.set()
        return await future

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                self._busy = True
                batch = self._take()
                rows = [row for p in batch for row in p.rows]
                try:
                    results = await loop.run_in_executor(self._executor, self._predict, rows)
                except Exception:
                    await self._one_by_one(batch)
                    continue
                if len(results) != len(rows):  # a bug in predict: never hand out wrong rows
                    error = RuntimeError(f"{len(results)} results for {len(rows)} rows")
                    for p in batch:
                        if not p.future.done():
                            p.future.set_exception(error)
                    continue
                self.batches += 1
                self.rows += len(rows)
                start = 0
                for p in batch:
                    end = start + len(p.rows)
                    if not p.future.done():
                        p.future.set_result(results[start:end])
                    start = end
            self._busy = False

    def _take(self) -> list[_Pending]:
        batch = [self._queue.popleft()]
        n = len(batch[0].rows)
        while self._queue and n + len(self._queue[0].rows) <= self.max_rows:
            p = self._queue.popleft()
            batch.append(p)
            n += len(p.rows)
        return batch

    async def _one_by_one(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        for p in batch:
            try:
                result = await loop.run_in_executor(self._executor, self._predict, p.rows)
            except Exception as exc:
                if not p.future.done():
                    p.future.set_exception(exc)
            else:
                if not p.future.done():
                    p.future.set_result(result)

    async def close(self) -> None:
        """Finish the queued requests, then stop the worker."""
        while self._queue or self._busy:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)
