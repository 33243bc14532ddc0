"""Faults of git and DVC in the user's repository: one clear message, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import ENV, edit, git, mlopsctl

pytestmark = pytest.mark.slow

UC = "usecases/breast-cancer.yaml"


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_a_leftover_index_lock_is_reported_with_its_fix_before_any_stage_runs(
    applied: Callable[[str], Path],
) -> None:
    root = applied("breast-cancer")
    # a new gate bound: the apply has a stage to run (the gate alone: no retrain needed)
    edit(root / UC, "roc_auc: {min: 0.95}", "roc_auc: {min: 0.94}")
    git(root, "commit", "-q", "-am", "change the gate")
    lock_before = (root / "dvc.lock").read_text()
    (root / ".git/index.lock").touch()  # what a git commit killed by SIGKILL leaves behind
    res = mlopsctl(root, "apply")  # the helper asserts there is no traceback
    assert res.returncode == 1
    [message] = _errors(res.stderr)
    assert ".git/index.lock exists" in message
    assert "a git process was killed" in message and "`rm .git/index.lock`" in message
    assert "ran" not in res.stdout  # reported before any stage ran
    assert (root / "dvc.lock").read_text() == lock_before
    (root / ".git/index.lock").unlink()
    assert mlopsctl(root, "apply").returncode == 0


def test_a_corrupt_git_index_is_one_message_and_a_traceback_only_with_debug(
    applied: Callable[[str], Path],
) -> None:
    root = applied("breast-cancer")
    (root / ".git/index").write_bytes(b"garbage")
    res = mlopsctl(root, "apply")
    assert res.returncode == 1
    [message] = _errors(res.stderr)
    assert message.startswith("error: git status failed (exit 128): fatal:")
    assert "index" in message
    debug = subprocess.run(
        [sys.executable, "-m", "mlopsctl", "--debug", "apply"],
        cwd=root,
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "GitCommandError" in debug.stderr


def test_a_broken_dvc_config_is_one_message(applied: Callable[[str], Path]) -> None:
    root = applied("breast-cancer")
    edit(root / UC, "C: 1.0", "C: 0.5")
    (root / ".dvc/config").write_text("[core\nbroken")
    res = mlopsctl(root, "apply", "--no-commit")  # the helper asserts there is no traceback
    assert res.returncode == 1
    [message] = _errors(res.stderr)
    assert message.startswith("error: dvc: config file error")
