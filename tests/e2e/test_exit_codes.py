"""Exit codes CI reads, and what `--debug` adds, through the CLI as a user runs it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def project(cli: Cli, git_repo: Path) -> Path:
    res = cli("init", "--example", "breast-cancer", cwd=git_repo)
    assert res.returncode == 0, res.stdout + res.stderr
    return git_repo


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--detailed-exitcode", "--bogus"],
        ["plan", "--detailed-exitcode", "--format", "yaml"],
        ["-C", "/nope", "plan", "--detailed-exitcode"],
    ],
    ids=["unknown-option", "bad-format", "missing-directory"],
)
def test_a_usage_error_with_detailed_exitcode_exits_1_not_2(
    cli: Cli, project: Path, args: list[str]
) -> None:
    res = cli(*args, cwd=project)
    assert res.returncode == 1, res.stderr  # 2 would read as "there are changes" in CI
    assert "Error:" in res.stderr and "Traceback" not in res.stderr
    # without --detailed-exitcode, click's usage error keeps its usual 2
    plain = cli(*[a for a in args if a != "--detailed-exitcode"], cwd=project)
    assert plain.returncode == 2, plain.stderr


def test_detailed_exitcode_still_exits_2_for_changes(cli: Cli, project: Path) -> None:
    assert cli("plan", "--detailed-exitcode", cwd=project).returncode == 2  # never applied


def test_debug_logs_what_plan_did_and_is_silent_without_it(cli: Cli, project: Path) -> None:
    debug = cli("--debug", "plan", cwd=project)
    assert debug.returncode == 0, debug.stderr
    lines = [line for line in debug.stderr.splitlines() if " DEBUG mlopsctl." in line]
    assert any("mlopsctl.plan.api: plan " in line and "stage(s)" in line for line in lines), (
        debug.stderr
    )
    quiet = cli("plan", cwd=project)
    assert quiet.returncode == 0
    assert "DEBUG" not in quiet.stderr
    assert quiet.stdout == debug.stdout  # logs go to stderr only
