"""Shared fixtures: the installed CLI in a subprocess, and throw-away git repositories."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

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
