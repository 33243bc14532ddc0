"""Shared fixtures: the installed CLI in a subprocess, and throw-away git repositories."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mlopsctl.execute.task import THREAD_VARS, cores


def _share_the_cores() -> None:
    """Under pytest-xdist, size this worker's OpenMP/BLAS pools (and those of the processes it
    starts) to its share of the cores, as scikit-learn's own test suite does.

    Pools sized for the whole machine spin against the other workers' processes: a
    HistGradientBoosting fit in a test ran 6.6x slower with 2 threads on a 2-core machine busy
    with the other worker (60.8 s vs 9.2 s). mlopsctl's stages set their own caps
    (execute/task.py), so what the tests check of those is unchanged; a variable the caller set
    is kept.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if workers > 1:
        for var in THREAD_VARS:
            os.environ.setdefault(var, str(max(1, cores() // workers)))


_share_the_cores()  # before anything imports numpy: the pools are sized when loaded


def _let_sigint_through() -> None:
    """Give SIGINT its usual meaning in this process, and so in the commands the tests start.

    bash ignores SIGINT in a background job (``cmd &`` without job control: a CI step started
    that way, ``nohup``), and a child inherits an ignored signal; mlopsctl rightly leaves it
    ignored (``mlopsctl.interrupts.install``), so the tests that interrupt a command with
    SIGINT, as a terminal's ^C would, waited for it to finish instead.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_let_sigint_through()

CLI_ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "NO_COLOR": "1"}
CLI_ENV.pop("CI", None)

Cli = Callable[..., "subprocess.CompletedProcess[str]"]


def _run_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m mlopsctl ARGS`` as a user runs it: no colour, DVC analytics off."""
    return subprocess.run(
        [sys.executable, "-m", "mlopsctl", *map(str, args)],
        cwd=cwd,
        env=CLI_ENV,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.fixture
def cli() -> Cli:
    """Run the installed CLI in a subprocess; returns the CompletedProcess (text mode)."""
    return _run_cli


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=root, env=CLI_ENV, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"git {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """An empty git repository (branch main) with a user identity, in a temp directory."""
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.name", "Test")
    _git(root, "config", "user.email", "test@example.com")
    return root
