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
