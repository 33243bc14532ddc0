"""Progress of a stage's long work: the file a stage writes, the lines apply shows from it."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from mlopsctl.report import progress
from mlopsctl.report.progress import Progress, Snapshot, Watcher, duration, read_all


def test_a_snapshot_says_done_total_percent_and_eta() -> None:
    snap = Snapshot("churn/train", "tuning", "fits", 10, 40, started=100.0)
    assert snap.eta(now=120.0) == pytest.approx(60.0)  # 2 s a fit, 30 fits to go
    assert snap.line(now=120.0) == "churn/train: tuning 10/40 fits (25%), ETA 1m00s"
    assert Snapshot("a/train", "tuning", "fits", 0, 5, 0.0).text(1.0) == "tuning 0/5 fits (0%)"
    assert Snapshot("a/train", "tuning", "fits", 5, 5, 0.0).text(9.0) == "tuning 5/5 fits (100%)"
    assert [duration(s) for s in (4.4, 65, 3725)] == ["4s", "1m05s", "1h02m"]


def test_the_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.INTERVAL_ENV, raising=False)
    assert progress.interval() == 10.0
    monkeypatch.setenv(progress.INTERVAL_ENV, "0.25")
    assert progress.interval() == 0.25
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv(progress.INTERVAL_ENV, bad)
        assert progress.interval() == 10.0


def _work(root: str, total: int) -> None:
    """In another process, as a pool or dask worker runs a stage: report each unit done."""
    p = Progress(Path(root), "uc/train", total, "tuning", "fits")
    for done in range(1, total + 1):
        time.sleep(0.05)
        p.update(done)
    time.sleep(0.6)  # the last state stays visible a moment, as the refit does
    p.close()


def test_progress_written_in_another_process_reaches_the_watcher(tmp_path: Path) -> None:
    shown: list[Snapshot] = []
    watcher = Watcher(tmp_path, shown.append, every=0.1)
    watcher.start()
    child = multiprocessing.get_context("spawn").Process(target=_work, args=(str(tmp_path), 20))
    child.start()
    child.join(60)
    watcher.stop()
    assert child.exitcode == 0
    assert shown, "the watcher showed nothing"
    assert {s.stage_id for s in shown} == {"uc/train"}
    dones = [s.done for s in shown]
    assert dones == sorted(dones) and dones[-1] == 20 and all(s.total == 20 for s in shown)
    assert read_all(tmp_path) == []  # the stage removed its file when done


def test_the_writer_rewrites_at_most_twice_a_second_but_always_the_end(tmp_path: Path) -> None:
    p = Progress(tmp_path, "uc/train", 100, "tuning", "fits")
    for done in range(1, 100):
        p.update(done)
    (snap,) = read_all(tmp_path)
    assert snap.done == 1  # the first update was written, the next 98 came too soon
    p.update(100)
    (snap,) = read_all(tmp_path)
    assert (snap.done, snap.total, snap.stage_id) == (100, 100, "uc/train")
    doc = json.loads((tmp_path / progress.PROGRESS_DIR / "uc_train.json").read_text())
    assert doc["what"] == "tuning" and doc["unit"] == "fits"


def test_watch_shows_through_the_reporter_and_clears_leftovers(tmp_path: Path) -> None:
    leftover = tmp_path / progress.PROGRESS_DIR / "old_train.json"
    leftover.parent.mkdir(parents=True)
    leftover.write_text('{"stage": "old/train"}')  # a killed run's file

    class Reporter:
        progress_interval = 0.1

        def __init__(self) -> None:
            self.lines: list[str] = []

        def progress(self, snap: Snapshot) -> None:
            self.lines.append(snap.line(time.time()))

    reporter = Reporter()
    with progress.watch(tmp_path, reporter):
        assert not leftover.exists()
        p = Progress(tmp_path, "uc/train", 4, "tuning", "fits")
        p.update(4)
        time.sleep(0.5)
    assert reporter.lines and reporter.lines[-1] == "uc/train: tuning 4/4 fits (100%)"
    assert not (tmp_path / progress.PROGRESS_DIR).exists()


def test_tuning_counts_every_cv_fit() -> None:
    """train's hook on joblib sees each completed fit of a real search."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    from mlopsctl.stages.train import _counting_fits

    seen: list[int] = []
    x, y = load_iris(return_X_y=True)
    search = GridSearchCV(LogisticRegression(max_iter=200), {"C": [0.1, 1.0, 10.0]}, cv=4)
    with _counting_fits(seen.append):
        search.fit(x, y)
    # 3 candidates x 4 folds, one at a time (joblib reports the last one twice)
    assert sorted(set(seen)) == list(range(1, 13)) and seen == sorted(seen)
