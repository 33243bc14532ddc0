"""Interrupting apply with real signals: workers and their children stop, the lock is released,
nothing is half-recorded, and the next apply records what completed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import ENV, edit, git, make_project, mlopsctl

pytestmark = pytest.mark.slow

UC = "usecases/breast-cancer.yaml"


def _gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaped has exited too)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _wait_for(check: Callable[[], bool], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("signum", "code", "jobs"),
    [
        (signal.SIGTERM, 143, "2"),  # a process pool: its workers must be stopped
        (signal.SIGINT, 130, "1"),  # inline: the command runs under the apply process itself
    ],
)
def test_interrupted_apply_stops_everything_and_records_nothing_by_halves(
    applied: Callable[[str], Path], tmp_path: Path, signum: int, code: int, jobs: str
) -> None:
    root = applied("breast-cancer")
    pids = tmp_path / "pids"
    # fast completes (journaled); slow is killed mid-command, with a child in the background
    with (root / UC).open("a") as fh:
        fh.write(
            "stages:\n"
            "  - name: fast\n"
            "    cmd: mkdir -p data && touch data/fast.out\n"
            "    outs: [data/fast.out]\n"
            "  - name: slow\n"
            f"    cmd: 'echo $$ $PPID > {pids}.tmp; sleep 30 & echo $! >> {pids}.tmp;"
            f" mv {pids}.tmp {pids}; wait; mkdir -p data && touch data/slow.out'\n"
            "    outs: [data/slow.out]\n"
        )
    git(root, "commit", "-q", "-am", "add a fast and a slow stage")
    lock_before = (root / "dvc.lock").read_text()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlopsctl", "apply", "--jobs", jobs],
        cwd=root,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    journal = root / ".mlopsctl/journal.jsonl"
    _wait_for(lambda: pids.exists() and journal.exists(), "the slow stage to start")
    shell, parent, child = (int(p) for p in pids.read_text().split())

    os.kill(proc.pid, signum)  # the apply process alone, as a CI runner's cancel does
    out, err = proc.communicate(timeout=60)  # a guard against a hang, not a timing assertion
    assert proc.returncode == code, out + err
    assert "Traceback" not in err, err
    name = signal.Signals(signum).name
    assert f"error: interrupted by {name}: workers stopped, lock released." in err
    assert "1 stage(s) completed before the interruption" in err
    assert "the next `mlopsctl apply` records and commits them" in err

    # the command, its background child and (with a pool) the worker that ran it are gone
    # (SIGKILL is delivered when the process is next scheduled: allow a loaded machine a moment)
    for pid in (shell, child, parent):
        _wait_for(lambda pid=pid: _gone(pid), f"process {pid} to be gone", seconds=10)
    time.sleep(1.0)  # give a survivor the chance to write what it must not
    assert not (root / "data/slow.out").exists()
    assert (root / "dvc.lock").read_text() == lock_before  # nothing recorded by halves
    assert not (root / ".mlopsctl/apply.lock").exists()  # released
    tmp = root / ".mlopsctl/tmp"
    assert not tmp.exists() or not any(tmp.iterdir())  # no staging dirs left

    # the next apply takes the lock, records what completed and runs the rest
    edit(root / UC, "sleep 30", "sleep 0")
    git(root, "commit", "-q", "-am", "slow no more")
    after = mlopsctl(root, "apply", "--jobs", jobs)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "recording the 1 stage(s) it completed" in after.stderr
    assert (root / "data/slow.out").exists()
    assert mlopsctl(root, "plan", "--detailed-exitcode").returncode == 0


def test_an_interrupted_apply_waits_for_its_dvc_preload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apply's background opening of the repository (integrations.dvc.preload) never outlives
    the stages: an interrupted apply lets the project lock go right after them, and another
    apply may then open the same repository (DVC writes .dvc/tmp and its site cache on opening)."""
    import dvc.repo

    from mlopsctl.execute import apply
    from mlopsctl.interrupts import Interrupted
    from mlopsctl.report.apply_view import make_reporter

    root = make_project(tmp_path, "breast-cancer")
    opening = dvc.repo.Repo.__init__

    def slow_opening(self: object, *args: object, **kwargs: object) -> None:
        if threading.current_thread().name == "mlopsctl-dvc-preload":
            time.sleep(1.0)  # the fault: a slow file system under the repository
        opening(self, *args, **kwargs)  # type: ignore[arg-type]

    def interrupted(self: object) -> None:  # the fault: ^C as the stages start
        raise Interrupted(signal.SIGINT)

    monkeypatch.setattr(dvc.repo.Repo, "__init__", slow_opening)
    monkeypatch.setattr(apply.Applier, "run", interrupted)
    with pytest.raises(Interrupted):
        apply.apply_directory(root, make_reporter(quiet=True), jobs=2)
    assert [t for t in threading.enumerate() if t.name == "mlopsctl-dvc-preload"] == []
