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


# --- how many stages can ever run at once (what sizes each stage's threads) ------------------

CHAIN = ["ingest", "validate", "split", "train", "evaluate", "gate"]


def _chain(prefix: str, names: list[str] = CHAIN) -> dict[str, list[str]]:
    ids = [f"{prefix}/{n}" for n in names]
    return {sid: ([ids[i - 1]] if i else []) for i, sid in enumerate(ids)}


def test_one_use_case_is_one_path_four_are_four() -> None:
    from mlopsctl.execute.schedule import concurrency

    one = _chain("a")
    assert concurrency(list(one), one, 2) == 1  # a lone chain: nothing ever runs beside it
    four = {k: v for p in "abcd" for k, v in _chain(p).items()}
    assert concurrency(list(four), four, 2) == 2  # capped at the pool
    assert concurrency(list(four), four, 8) == 4
    # only the stages to run count: one use case's stages, another's up to date
    assert concurrency([s for s in four if s.startswith("b/")], four, 8) == 1


def test_a_side_branch_can_run_beside_the_chain() -> None:
    from mlopsctl.execute.schedule import concurrency

    graph = _chain("a")
    graph["a/extract"] = []  # a custom stage with no upstream, before train
    graph["a/train"] = ["a/split", "a/extract"]
    assert concurrency(list(graph), graph, 8) == 2
    graph["a/report"] = ["a/evaluate"]  # beside gate
    assert concurrency(list(graph), graph, 8) == 3
    assert concurrency([], graph, 8) == 1


def test_the_bound_is_never_below_what_can_run_at_once() -> None:
    """Any set of mutually independent stages lies on distinct paths of the cover."""
    import itertools
    import random

    from mlopsctl.execute.schedule import concurrency

    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 9)
        ids = [f"s{i}" for i in range(n)]
        up = {s: [u for u in ids[:i] if rng.random() < 0.3] for i, s in enumerate(ids)}
        reach = {s: set(up[s]) for s in ids}  # transitive upstream
        for s in ids:
            for u in list(up[s]):
                reach[s] |= reach[u]
        width = max(
            len(group)
            for k in range(1, n + 1)
            for group in itertools.combinations(ids, k)
            if all(
                a not in reach[b] and b not in reach[a] for a, b in itertools.combinations(group, 2)
            )
        )
        assert width <= concurrency(ids, up, n) <= n
