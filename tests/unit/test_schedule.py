"""The one scheduling loop apply and verify share (mlopsctl.execute.schedule)."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from mlopsctl.execute.schedule import run_in_order

# a diamond plus an independent chain:  a -> b, a -> c, (b, c) -> d;  x -> y
UPSTREAM = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "x": [], "y": ["x"]}
IDS = ["a", "b", "c", "d", "x", "y"]


def _run(
    max_parallel: int, inline: frozenset[str] = frozenset()
) -> tuple[list[str], list[str], int]:
    started: list[str] = []
    completed: list[str] = []
    lock = threading.Lock()
    live = 0
    peak = 0

    def work(sid: str) -> str:
        nonlocal live, peak
        with lock:
            live += 1
            peak = max(peak, live)
        threading.Event().wait(0.01)  # long enough for siblings to overlap
        with lock:
            live -= 1
        return sid

    with ThreadPoolExecutor(max_workers=4) as pool:

        def start(sid: str) -> Future[Any] | None:
            for u in UPSTREAM[sid]:
                assert u in completed or u in inline, f"{sid} started before {u} completed"
            started.append(sid)
            if sid in inline:
                completed.append(sid)
                return None
            return pool.submit(work, sid)

        def complete(sid: str, fut: Future[Any]) -> None:
            assert fut.result() == sid
            completed.append(sid)

        run_in_order(IDS, UPSTREAM, max_parallel, start, complete)
    return started, completed, peak


def test_one_at_a_time_runs_in_spec_order_and_respects_dependencies() -> None:
    started, completed, peak = _run(1)
    # ready stages queue in spec order: x (ready from the start) goes before b and c
    assert started == ["a", "x", "b", "c", "y", "d"]
    assert sorted(completed) == sorted(IDS)
    assert peak == 1


def test_parallel_never_exceeds_the_cap_and_starts_independent_work_together() -> None:
    started, completed, peak = _run(2)
    assert started[:2] == ["a", "x"]  # both roots first, in spec order
    assert sorted(completed) == sorted(IDS)
    assert peak == 2


def test_stages_finished_without_a_worker_release_their_downstream() -> None:
    started, completed, peak = _run(2, inline=frozenset({"a", "x"}))
    # a and x finish inline and take no slot: b and c start at once and run side by side
    assert started[:4] == ["a", "x", "b", "c"]
    assert peak == 2
    assert set(completed) == set(IDS)


def test_upstream_outside_the_ids_counts_as_done() -> None:
    seen: list[str] = []

    def start(sid: str) -> Future[Any] | None:
        seen.append(sid)
        return None

    run_in_order(["b", "d"], {"b": ["a"], "d": ["b", "c"]}, 1, start, lambda s, f: None)
    assert seen == ["b", "d"]


def test_an_exception_in_a_callback_propagates() -> None:
    def start(sid: str) -> Future[Any] | None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_in_order(IDS, UPSTREAM, 2, start, lambda s, f: None)
