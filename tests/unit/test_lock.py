"""The project lock under a real race: separate processes, a real file lock, real deaths."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlopsctl.errors import LockHeldError
from mlopsctl.execute.lock import LOCK_FILE, project_lock

STAGING_DIR = ".mlopsctl/tmp"

# Each locker waits for the start signal, then tries the lock until it has held it once. While it
# holds the lock it writes enter/exit markers, then dies without releasing it (as a killed apply
# does), so that every round is a race to take over a dead holder's lock.
LOCKER = """
import os, sys, time
from pathlib import Path
from mlopsctl.errors import LockHeldError
from mlopsctl.execute.lock import project_lock

child = os.fork()  # the locker runs in a child that this process reaps as soon as it dies
if child:
    sys.exit(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
root = Path(sys.argv[1])
marks = root / "marks.txt"
while not (root / "go").exists():
    time.sleep(0.001)
deadline = time.time() + 60
while time.time() < deadline:
    try:
        with project_lock(root, warn=lambda message: None):
            with marks.open("a") as fh:
                fh.write(f"enter {os.getpid()}\\n")
            time.sleep(0.05)
            with marks.open("a") as fh:
                fh.write(f"exit {os.getpid()}\\n")
            os._exit(0)  # die holding the lock: no release, the holder record stays
    except LockHeldError:
        time.sleep(0.001)
sys.exit(3)
"""


def _race(root: Path, lockers: int) -> list[str]:
    """Start *lockers* processes at once; the enter/exit markers they wrote, in order."""
    root.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen([sys.executable, "-c", LOCKER, str(root)], env=env) for _ in range(lockers)
    ]
    time.sleep(1.0)  # let every interpreter start and reach the start line
    (root / "go").touch()
    codes = [p.wait(timeout=120) for p in procs]
    assert codes == [0] * lockers, "a locker never got the lock"
    return (root / "marks.txt").read_text().split("\n")[:-1]


def test_racing_lockers_hold_the_lock_one_at_a_time(tmp_path: Path) -> None:
    lockers = 6
    for race in range(3):  # a lost race shows up in most runs; three make a miss unlikely
        marks = _race(tmp_path / f"race{race}", lockers)
        assert len(marks) == 2 * lockers
        for i in range(0, len(marks), 2):  # enter X is always followed by exit X: no overlap
            assert marks[i].startswith("enter "), marks
            assert marks[i + 1] == marks[i].replace("enter", "exit"), marks


def test_held_lock_names_its_holder_and_a_dead_holders_lock_is_taken_over(
    tmp_path: Path,
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path\n"
            "from mlopsctl.execute.lock import project_lock\n"
            "with project_lock(Path(sys.argv[1])):\n"
            "    print('held', flush=True); time.sleep(60)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    held = rf"another apply holds the lock \(pid {holder.pid} on"
    with pytest.raises(LockHeldError, match=held), project_lock(tmp_path):
        pass
    holder.kill()  # SIGKILL: the kernel drops the lock, the record stays
    holder.wait()
    holder.stdout.close()
    assert (tmp_path / LOCK_FILE).exists()
    warnings: list[str] = []
    with project_lock(tmp_path, warn=warnings.append):
        (tmp_path / STAGING_DIR / "train.abc").mkdir(parents=True)  # a stopped stage's staging
    assert not (tmp_path / STAGING_DIR / "train.abc").exists()  # removed with the lock
    assert len(warnings) == 1
    assert f"taking over the lock left by a process that is gone (pid {holder.pid}" in warnings[0]
    assert not (tmp_path / LOCK_FILE).exists()  # released cleanly: no record left
