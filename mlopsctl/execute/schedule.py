"""Run a stage graph in dependency order, independent stages in parallel.

One loop shared by ``apply`` (:class:`mlopsctl.execute.apply.Applier`) and ``verify``
(:mod:`mlopsctl.gitops.verify`): a stage starts once every upstream it waits for has
completed, ready stages start in the order given (spec order, so runs and logs are
deterministic), and at most ``max_parallel`` run at a time.
"""

from __future__ import annotations

import graphlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

#: starts a stage; returns its future, or None when it finished without a worker
Start = Callable[[str], "Future[Any] | None"]
#: records a started stage's finished future
Complete = Callable[[str, "Future[Any]"], None]


def run_in_order(
    ids: Sequence[str],
    upstream: Mapping[str, Sequence[str]],
    max_parallel: int,
    start: Start,
    complete: Complete,
) -> None:
    """Start every stage of *ids* once its upstream stages among *ids* completed.

    *start* is called for each stage in dependency order (ties broken by the position in
    *ids*); *complete* is called for each future *start* returned, as it finishes. An
    upstream outside *ids* counts as done. Exceptions from the callbacks propagate; the
    caller stops its executor.
    """
    wanted = set(ids)
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter(
        {sid: [u for u in upstream[sid] if u in wanted] for sid in ids}
    )
    sorter.prepare()
    position = {sid: i for i, sid in enumerate(ids)}
    ready: list[str] = []
    running: dict[Future[Any], str] = {}
    while sorter.is_active():
        ready.extend(sorted(sorter.get_ready(), key=position.__getitem__))
        while ready and len(running) < max_parallel:
            sid = ready.pop(0)
            fut = start(sid)
            if fut is None:  # finished without a worker (blocked, skipped, restored)
                sorter.done(sid)
                ready.extend(sorted(sorter.get_ready(), key=position.__getitem__))
            else:
                running[fut] = sid
        if not running:
            continue
        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for fut in done:
            sid = running.pop(fut)
            complete(sid, fut)
            sorter.done(sid)


def concurrency(ids: Sequence[str], upstream: Mapping[str, Sequence[str]], limit: int) -> int:
    """At most how many stages of *ids* can ever run at once (capped at *limit*).

    An upper bound: the size of a cover of *ids* by dependency paths (stages on one path run one
    after another, so no more stages than paths run at once). Found greedily, longest path
    first: one use case's built-in stages are one path (1), four independent use cases four.
    What sizes each stage's threads (``thread_cap``): a lone chain under ``--jobs 2`` may use
    every core, since nothing ever runs beside it.
    """
    remaining = set(ids)
    order = list(
        graphlib.TopologicalSorter(
            {sid: [u for u in upstream[sid] if u in remaining] for sid in ids}
        ).static_order()
    )
    paths = 0
    while remaining and paths < limit:
        length: dict[str, int] = {}
        before: dict[str, str] = {}
        for sid in order:
            if sid not in remaining:
                continue
            ups = [u for u in upstream[sid] if u in remaining]
            best = max(ups, key=length.__getitem__, default=None)
            length[sid] = 1 + (length[best] if best is not None else 0)
            if best is not None:
                before[sid] = best
        node: str | None = max(length, key=length.__getitem__)
        while node is not None:
            remaining.discard(node)
            node = before.get(node)
        paths += 1
    return max(1, paths)
