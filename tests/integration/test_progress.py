"""A tuning run shows its progress in a log (no terminal): fits done / total, with an ETA."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from .conftest import ENV, edit, git, mlopsctl

TUNING = (
    "  tuning:\n"
    "    method: grid\n"
    "    cv: 5\n"
    "    params: {C: [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]}\n"
)


def test_tuning_in_a_pool_worker_prints_progress_lines(applied: Callable[[str], Path]) -> None:
    root = applied("breast-cancer")
    edit(
        root / "usecases" / "breast-cancer.yaml",
        "\n  preprocessing:",
        "\n" + TUNING + "  preprocessing:",
    )
    git(root, "commit", "-q", "-am", "tune C")
    env = {**ENV, "MLOPSCTL_PROGRESS_INTERVAL": "0.1"}
    # --jobs 2: train runs in a process-pool worker, which relays its progress through a file
    proc = mlopsctl(root, "apply", "--jobs", "2", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = re.findall(r"^breast-cancer/train: tuning (\d+)/51 fits \((\d+)%\)", proc.stdout, re.M)
    assert lines, proc.stdout
    done = [int(d) for d, _pct in lines]
    assert done == sorted(done) and all(0 <= d <= 51 for d in done)
    assert "ETA" in proc.stdout
    # the lines come before the stage's own line, and the progress files are gone after
    assert proc.stdout.index("tuning") < proc.stdout.index("breast-cancer/train: ran")
    assert not (root / ".mlopsctl" / "progress").exists()
