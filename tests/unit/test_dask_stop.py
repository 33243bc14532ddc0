"""Stopping the threads of an interrupted apply's stage tasks on a dask worker (no cluster needed:
the registry and the stop are plain threads in this process)."""

from __future__ import annotations

import threading
import time

from mlopsctl.execute import dask_executor as de


def _busy(key: str, outcome: dict[str, str], started: threading.Event) -> None:
    """A stage that never ends by itself: a Python loop, as a fit's iterations are."""
    try:
        with de.stoppable(key):
            started.set()
            while True:
                sum(range(1000))
    except de.StageStopped:
        outcome[key] = "stopped"


def _start(key: str, outcome: dict[str, str]) -> threading.Thread:
    started = threading.Event()
    thread = threading.Thread(target=_busy, args=(key, outcome, started), daemon=True)
    thread.start()
    assert started.wait(10)
    return thread


def test_only_the_named_stages_are_stopped() -> None:
    outcome: dict[str, str] = {}
    ours, theirs = _start("mlopsctl-a_train-1", outcome), _start("mlopsctl-b_train-2", outcome)
    try:
        assert de.stop_stages(["mlopsctl-a_train-1", "mlopsctl-gone-3"]) == ["mlopsctl-a_train-1"]
        ours.join(10)
        assert not ours.is_alive() and outcome == {"mlopsctl-a_train-1": "stopped"}
        assert "mlopsctl-a_train-1" in de.stopped_stages()
        time.sleep(0.2)
        assert theirs.is_alive()  # another apply's stage runs on
        assert set(de._RUNNING) == {"mlopsctl-b_train-2"}
    finally:
        de.stop_stages(["mlopsctl-b_train-2"])
        theirs.join(10)
    assert not theirs.is_alive() and not de._RUNNING and not de._TARGETED


def test_a_stage_is_stopped_once_and_a_finished_one_not_at_all() -> None:
    outcome: dict[str, str] = {}
    thread = _start("mlopsctl-c_evaluate-4", outcome)
    # asked twice (two interrupts): one exception, and the second ask names nothing
    first = de.stop_stages(["mlopsctl-c_evaluate-4"])
    second = de.stop_stages(["mlopsctl-c_evaluate-4"])
    thread.join(10)
    assert first == ["mlopsctl-c_evaluate-4"] and second == []
    assert outcome == {"mlopsctl-c_evaluate-4": "stopped"}
    assert de.stop_stages(["mlopsctl-c_evaluate-4"]) == []  # it ended: nothing to stop


def test_a_stage_asked_to_stop_before_it_starts_here_does_not_run() -> None:
    """The interrupt came while the worker was starting the task (unpickling its function,
    importing): nothing ran yet to be stopped, and the stage must not run once it gets there."""
    assert de.stop_stages(["mlopsctl-d_train-5"]) == []  # not running here: nothing stopped now
    ran: list[str] = []
    try:
        with de.stoppable("mlopsctl-d_train-5"):
            ran.append("the stage")
    except de.StageStopped:
        ran.append("stopped")
    assert ran == ["stopped"]
    assert "mlopsctl-d_train-5" in de.stopped_stages()
    assert "mlopsctl-d_train-5" not in de._RUNNING
    # only that once: another apply's task under the same key (a retry) is not refused again
    with de.stoppable("mlopsctl-d_train-5"):
        ran.append("a later run")
    assert ran == ["stopped", "a later run"]
