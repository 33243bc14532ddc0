"""infra.n_jobs means what it says: every stage runs with its thread pools capped.

The cap is min(n_jobs, cores // stages that can run at once): apply --jobs 2 on a 2-core machine
gives each stage 1 thread when two can run side by side, --jobs 1 (or a lone chain) gives it
n_jobs (at most every core).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlopsctl.execute.task import THREAD_VARS, cores, thread_cap

from .conftest import edit, make_project, mlopsctl

CUSTOM = (
    "stages:\n"
    "  - name: threads\n"
    '    cmd: echo "$OMP_NUM_THREADS $MKL_NUM_THREADS $OPENBLAS_NUM_THREADS" > threads.txt\n'
    "    outs: [threads.txt]\n"
    "    before: train\n"
)


def test_thread_cap_is_n_jobs_within_the_stages_share_of_the_cores() -> None:
    n = cores()
    assert thread_cap(1, 1) == 1
    assert thread_cap(n + 5, 1) == n  # never more than the cores
    assert thread_cap(-1, 1) == n  # -1: every core
    assert thread_cap(-1, n) == 1 and thread_cap(4, 2 * n) == 1  # at least one
    assert thread_cap(-1, 2) == max(1, n // 2)


#: run in a fresh interpreter with no thread variable set (the test session's own may be set,
#: see tests/conftest.py): its pools start at every core, as a user's do
CAPS_POOLS = """
import os, subprocess, sys
import numpy  # loads OpenBLAS, so that there is a pool to cap
from mlopsctl.execute.task import THREAD_VARS, cores, limited_threads, pool_threads
assert pool_threads() == cores(), (pool_threads(), cores())
with limited_threads(1):
    assert pool_threads() == 1
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ['OMP_NUM_THREADS'])"],
        capture_output=True, text=True, check=True,
    )
    assert child.stdout.strip() == "1", child.stdout
assert pool_threads() == cores()
assert not [var for var in THREAD_VARS if var in os.environ]
"""


def test_limited_threads_caps_loaded_pools_and_child_processes() -> None:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    proc = subprocess.run(
        [sys.executable, "-c", CAPS_POOLS], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_apply_caps_each_stages_threads(tmp_path: Path) -> None:
    root = make_project(tmp_path, "breast-cancer")
    spec = root / "usecases" / "breast-cancer.yaml"
    edit(spec, "n_jobs: 1", "n_jobs: 2")
    with spec.open("a") as fh:
        fh.write(CUSTOM)

    for jobs, force in (("2", ()), ("1", ("--force",))):
        proc = mlopsctl(root, "apply", "--jobs", jobs, "--json", "--no-commit", *force)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        cap = min(2, cores() // int(jobs)) or 1
        stages = {s["id"]: s for s in json.loads(proc.stdout)["stages"]}
        for name in ("ingest", "validate", "split", "train", "evaluate", "gate"):
            stage = stages[f"breast-cancer/{name}"]
            assert stage["status"] == "ran", stage
            assert stage["summary"]["threads"] == cap, (jobs, stage)
        assert (root / "threads.txt").read_text().split() == [str(cap)] * 3

    # without the custom stage the use case is one chain: under --jobs 2 nothing ever runs beside
    # a stage, so it may use every core (it got cores // 2 before)
    spec.write_text(spec.read_text().replace(CUSTOM, "").replace("n_jobs: 2", "n_jobs: -1"))
    proc = mlopsctl(root, "apply", "--jobs", "2", "--json", "--no-commit")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ran = {s["id"]: s for s in json.loads(proc.stdout)["stages"] if s["status"] == "ran"}
    assert ran["breast-cancer/train"]["summary"]["threads"] == cores(), ran
