"""Real git repositories and real DVC in temp directories, driven through the installed CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ENV = {
    **os.environ,
    "DVC_NO_ANALYTICS": "1",
    "NO_COLOR": "1",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}
ENV.pop("CI", None)
BIN = Path(sys.executable).parent
# dvc.yaml runs `mlopsctl run-stage ...`: `dvc repro` must find this environment's mlopsctl
ENV["PATH"] = f"{BIN}{os.pathsep}{ENV.get('PATH', '')}"


def run(
    args: list[str], cwd: Path, check: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, env=env or ENV, check=False, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def mlopsctl(
    root: Path, *args: str, check: bool = False, **kw: Any
) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "mlopsctl", *args], root, check=check, **kw)


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run([str(BIN / "dvc"), *args], root, check=check)


def git(root: Path, *args: str) -> str:
    return run(["git", *args], root, check=True).stdout


def dvc_stale(root: Path) -> set[str]:
    """Pipeline stages that `dvc status` reports, as mlopsctl stage ids (usecase/stage)."""
    out = json.loads(dvc(root, "status", "--json").stdout or "{}")
    stages = set()
    for key in out:
        name = key.split(":")[-1]
        if name.endswith(".dvc"):
            continue
        uc, _, stage = name.partition("_")
        stages.add(f"{uc}/{stage}")
    return stages


def plan_json(root: Path, *args: str) -> dict[str, Any]:
    proc = mlopsctl(root, "plan", "--format", "json", *args, check=True)
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def stale_ids(plan: dict[str, Any]) -> set[str]:
    """Stages stale on their own account (what `dvc status` reports)."""
    return {
        s["id"]
        for s in plan["stages"]
        if any(r["kind"] not in ("upstream", "upstream-blocked") for r in s["reasons"])
    }


def to_run(plan: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["action"] for s in plan["stages"] if s["action"] != "up-to-date"}


def make_project(tmp: Path, example: str, remote: bool = True) -> Path:
    root = tmp / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Test")
    git(root, "config", "user.email", "test@example.com")
    args = ["init", "--example", example]
    if remote:
        args += ["--remote", str(tmp / "remote")]
    mlopsctl(root, *args, check=True)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


@dataclass(frozen=True)
class FirstApply:
    """What the template's first plan and apply on a fresh project printed and committed."""

    plan: subprocess.CompletedProcess[str]  # `plan --detailed-exitcode` before any apply
    commits_before: int
    apply: subprocess.CompletedProcess[str]
    commits_after: int
    message: str  # of the commit apply made


@pytest.fixture(scope="session")
def first_applies() -> dict[str, FirstApply]:
    """Filled by ``applied_template``: each example's first plan and apply, for the tests of
    that first apply itself (test_engine.py) without applying a fresh project once more."""
    return {}


@pytest.fixture(scope="session")
def applied_template(
    tmp_path_factory: pytest.TempPathFactory, first_applies: dict[str, FirstApply]
) -> Callable[[str], Path]:
    """An example project, initialised and applied once per session; copy it per test."""
    made: dict[str, Path] = {}

    def get(example: str) -> Path:
        if example not in made:
            base = tmp_path_factory.mktemp(f"tpl-{example}")
            root = make_project(base, example)
            plan = mlopsctl(root, "plan", "--detailed-exitcode")
            before = int(git(root, "rev-list", "--count", "HEAD"))
            proc = mlopsctl(root, "apply", check=True)
            first_applies[example] = FirstApply(
                plan,
                before,
                proc,
                int(git(root, "rev-list", "--count", "HEAD")),
                git(root, "log", "-1", "--format=%B"),
            )
            made[example] = base
        return made[example]

    return get


def copy_project(src: Path, dst: Path) -> Path:
    """A private copy of the project *src*/repo (git, DVC cache, .mlopsctl) as *dst*/repo and,
    when there is one, of its DVC remote *src*/remote as *dst*/remote, the copy's remote
    re-pointed at it and committed: a test's own state, shared with no other test."""
    root = dst / "repo"
    shutil.copytree(src / "repo", root, symlinks=True)
    if (src / "remote").exists():
        shutil.copytree(src / "remote", dst / "remote")
        dvc(root, "remote", "add", "-d", "-f", "storage", str(dst / "remote"))
        git(root, "commit", "-q", "-am", "point the remote at this copy")
    return root


@pytest.fixture
def applied(applied_template: Callable[[str], Path], tmp_path: Path) -> Callable[[str], Path]:
    """A private copy of an applied example project (repo + its DVC remote)."""

    def get(example: str) -> Path:
        return copy_project(applied_template(example), tmp_path)

    return get


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), "utf-8")
