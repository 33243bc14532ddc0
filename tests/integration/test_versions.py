"""Versions and deployments as GTO git tags, end to end: real git, real DVC, the real `gto`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import BIN, ENV, edit, git, mlopsctl
from .test_deploy import USECASE as HOUSES
from .test_deploy import regression_project, set_deploy

pytestmark = pytest.mark.slow

NAME = "breast-cancer"
USECASE = f"usecases/{NAME}.yaml"
GTO = BIN / "gto"


def tags(root: Path, pattern: str = "*") -> list[str]:
    return git(root, "tag", "--list", pattern).split()


def target(root: Path, tag: str) -> str:
    return git(root, "rev-parse", f"{tag}^{{commit}}").strip()


def head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD").strip()


def gto(root: Path, *args: str) -> str:
    proc = subprocess.run(
        [str(GTO), *args], cwd=root, capture_output=True, text=True, env=ENV, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def gto_json(root: Path, *args: str) -> object:
    return json.loads(gto(root, *args, "--json"))


def locked_md5(root: Path, stage: str, path: str) -> str:
    import yaml

    lock = yaml.safe_load((root / "dvc.lock").read_text("utf-8"))
    outs = {o["path"]: o["md5"] for o in lock["stages"][stage]["outs"]}
    return str(outs[path])


def _commit_a_param_change(root: Path) -> None:
    """C 1.0 -> 0.5, committed: the next apply trains a new model (a minor version)."""
    edit(root / USECASE, "C: 1.0", "C: 0.5")
    git(root, "commit", "-q", "-am", "weaker regularisation")


def test_two_applies_tag_two_annotated_versions_that_gto_lists(
    applied: Callable[[str], Path],
) -> None:
    root = applied(NAME)  # applied once: v1.0.0 on the first apply commit
    assert tags(root) == [f"{NAME}@v1.0.0"]
    first = target(root, f"{NAME}@v1.0.0")
    assert git(root, "log", "-1", "--format=%s", first).startswith("mlopsctl apply: ")

    _commit_a_param_change(root)
    proc = mlopsctl(root, "apply", check=True)
    assert f"tagged {head(root)[:10]} {NAME}@v1.1.0" in proc.stdout
    assert tags(root) == [f"{NAME}@v1.0.0", f"{NAME}@v1.1.0"]
    assert target(root, f"{NAME}@v1.1.0") == head(root)
    for tag in tags(root):
        assert git(root, "cat-file", "-t", tag).strip() == "tag"  # annotated, not lightweight
    message = git(root, "tag", "-l", "--format=%(contents)", f"{NAME}@v1.1.0")
    model = locked_md5(root, f"{NAME}_train", f"artifacts/{NAME}/model.skops")
    assert f"Model: artifacts/{NAME}/model.skops md5:{model}" in message
    snapshot = locked_md5(root, f"{NAME}_ingest", f"artifacts/{NAME}/snapshot.parquet")
    assert f"Data: artifacts/{NAME}/snapshot.parquet md5:{snapshot}" in message
    assert "Gate: passed (f1=" in message and "roc_auc=" in message
    assert "Metrics: accuracy=" in message
    assert "Bump: minor: a new model, same interface as v1.0.0" in message
    assert f"Mlopsctl-Version: {NAME}@v1.1.0" in git(root, "log", "-1", "--format=%B")

    # the real gto reads them: both versions, the latest first
    listed = gto_json(root, "show", NAME)
    assert [v["version"] for v in listed] == ["v1.1.0", "v1.0.0"]  # type: ignore[index]
    assert {v["ref"] for v in listed} == {f"{NAME}@v1.0.0", f"{NAME}@v1.1.0"}  # type: ignore[index]
    assert gto_json(root, "show")[NAME]["version"] == "v1.1.0"  # type: ignore[index]

    # a no-op apply tags nothing; neither does a forced re-run of the same inputs
    before = head(root)
    mlopsctl(root, "apply", check=True)
    mlopsctl(root, "apply", "--force", check=True)
    assert tags(root) == [f"{NAME}@v1.0.0", f"{NAME}@v1.1.0"]
    assert head(root) == before
    status = json.loads(mlopsctl(root, "status", "--json", check=True).stdout)
    assert status[0]["version"] == "v1.1.0" and status[0]["deployed_to"] == {}
    assert "v1.1.0" in mlopsctl(root, "status", check=True).stdout


def test_a_failed_gate_is_not_tagged(applied: Callable[[str], Path]) -> None:
    root = applied(NAME)
    edit(root / USECASE, "C: 1.0", "C: 0.01")
    edit(root / USECASE, "roc_auc: {min: 0.95}", "roc_auc: {min: 0.9999}")
    git(root, "commit", "-q", "-am", "an unreachable gate")
    proc = mlopsctl(root, "apply")
    assert proc.returncode == 1
    assert tags(root) == [f"{NAME}@v1.0.0"]
    assert "Mlopsctl-Version" not in git(root, "log", "-1", "--format=%B")
    card = (root / f"reports/{NAME}/model_card.md").read_text("utf-8")
    assert "- Version: not versioned: the quality gate failed" in card
    assert "| roc_auc |" in card and "| >= 0.9999 | no |" in card
    assert git(root, "status", "--porcelain") == ""

    # the gate is lowered again: the model that now passes becomes v1.1.0
    edit(root / USECASE, "roc_auc: {min: 0.9999}", "roc_auc: {min: 0.9}")
    git(root, "commit", "-q", "-am", "a reachable gate")
    mlopsctl(root, "apply", check=True)
    assert tags(root) == [f"{NAME}@v1.0.0", f"{NAME}@v1.1.0"]
    assert target(root, f"{NAME}@v1.1.0") == head(root)


def test_a_no_commit_apply_is_versioned_by_the_apply_that_commits_it(
    applied: Callable[[str], Path],
) -> None:
    root = applied(NAME)
    edit(root / USECASE, "C: 1.0", "C: 2.0")
    git(root, "commit", "-q", "-am", "C 2")
    mlopsctl(root, "apply", "--no-commit", check=True)
    assert tags(root) == [f"{NAME}@v1.0.0"]
    card = (root / f"reports/{NAME}/model_card.md").read_text("utf-8")
    assert "not versioned: this apply does not commit" in card
    mlopsctl(root, "apply", check=True)  # nothing to run: commits what is recorded, and tags it
    assert tags(root) == [f"{NAME}@v1.0.0", f"{NAME}@v1.1.0"]
    assert target(root, f"{NAME}@v1.1.0") == head(root)
    card = (root / f"reports/{NAME}/model_card.md").read_text("utf-8")
    assert f"- Version: v1.1.0 (git tag `{NAME}@v1.1.0`)" in card
    assert git(root, "status", "--porcelain") == ""


def _killed(root: Path, point: str) -> None:
    env = dict(ENV, MLOPSCTL_KILL_AT=point)
    proc = subprocess.run(
        [sys.executable, "-m", "mlopsctl", "apply"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr


def test_killed_between_commit_and_tag_the_next_apply_creates_exactly_the_missing_tag(
    applied: Callable[[str], Path],
) -> None:
    root = applied(NAME)
    _commit_a_param_change(root)
    _killed(root, "tag")
    killed_commit = head(root)
    assert f"Mlopsctl-Version: {NAME}@v1.1.0" in git(root, "log", "-1", "--format=%B")
    assert tags(root) == [f"{NAME}@v1.0.0"]  # committed, not tagged
    # someone commits on top before the next apply: the tag still goes on the apply commit
    (root / "NOTES.md").write_text("notes\n", "utf-8")
    git(root, "add", "NOTES.md")
    git(root, "commit", "-q", "-m", "notes")

    proc = mlopsctl(root, "apply", check=True)
    assert "interrupted before tagging" in proc.stderr + proc.stdout
    assert tags(root) == [f"{NAME}@v1.0.0", f"{NAME}@v1.1.0"]
    assert target(root, f"{NAME}@v1.1.0") == killed_commit
    assert git(root, "cat-file", "-t", f"{NAME}@v1.1.0").strip() == "tag"
    assert not (root / ".mlopsctl/pending-tags.json").exists()
    mlopsctl(root, "apply", check=True)
    assert tags(root) == [f"{NAME}@v1.0.0", f"{NAME}@v1.1.0"]


def test_killed_before_the_commit_the_healing_apply_tags_once(
    applied: Callable[[str], Path],
) -> None:
    root = applied(NAME)
    _commit_a_param_change(root)
    _killed(root, "commit")
    assert tags(root) == [f"{NAME}@v1.0.0"]
    mlopsctl(root, "apply", check=True)
    assert tags(root) == [f"{NAME}@v1.0.0", f"{NAME}@v1.1.0"]
    assert target(root, f"{NAME}@v1.1.0") == head(root)
    body = git(root, "log", "-1", "--format=%B")
    assert body.count("Mlopsctl-Version:") == 1
    assert git(root, "status", "--porcelain") == ""


REST = "  target: rest\n  rest: {host: 127.0.0.1, port: 18090}\n"


def at(day: int) -> dict[str, str]:
    """The test environment with commits (and so tags) dated on *day*: GTO orders by tag time."""
    date = f"2026-01-{day:02d}T00:00:00Z"
    return dict(ENV, GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)


def test_deployments_are_gto_stage_assignments(tmp_path: Path) -> None:
    root = regression_project(tmp_path, deploy=REST)
    mlopsctl(root, "apply", check=True, env=at(2))
    name = "house-prices"
    assert tags(root) == [f"{name}#prod#1", f"{name}@v1.0.0"]
    assert target(root, f"{name}#prod#1") == target(root, f"{name}@v1.0.0") == head(root)
    assert git(root, "cat-file", "-t", f"{name}#prod#1").strip() == "tag"
    shown = gto_json(root, "show", name)
    stages = [(v["version"], [s["stage"] for s in v["stages"]]) for v in shown]  # type: ignore[index,attr-defined]
    assert stages == [("v1.0.0", ["prod"])]
    assert gto_json(root, "show")[name]["stage"]["prod"] == "v1.0.0"  # type: ignore[index]

    # deploy re-runs for a new port, the model is the same: already deployed, no new tag
    set_deploy(root, "  target: rest\n  rest: {host: 127.0.0.1, port: 18091}\n")
    git(root, "commit", "-q", "-am", "new port")
    mlopsctl(root, "apply", check=True, env=at(3))
    assert tags(root) == [f"{name}#prod#1", f"{name}@v1.0.0"]

    # the feature set changes: the interface changed, a major version, deployed as #prod#2
    edit(
        root / HOUSES,
        "numeric: [area_m2, rooms, age_years, distance_km]",
        "numeric: [area_m2, age_years, distance_km]",
    )
    edit(root / HOUSES, "drop: [house_id]", "drop: [house_id, rooms]")
    git(root, "commit", "-q", "-am", "drop rooms")
    mlopsctl(root, "apply", check=True, env=at(4))
    assert tags(root) == [f"{name}#prod#1", f"{name}#prod#2", f"{name}@v1.0.0", f"{name}@v2.0.0"]
    assert target(root, f"{name}#prod#2") == target(root, f"{name}@v2.0.0") == head(root)
    message = git(root, "tag", "-l", "--format=%(contents)", f"{name}@v2.0.0")
    assert "Bump: major: the model's interface changed since v1.0.0" in message
    assert gto_json(root, "show")[name]["stage"]["prod"] == "v2.0.0"  # type: ignore[index]
    assert "prod" in gto(root, "show", name)
    status = json.loads(mlopsctl(root, "status", "--json", check=True).stdout)
    assert status[0]["version"] == "v2.0.0"
    assert status[0]["deployed_to"] == {"prod": "v2.0.0"}
    assert "deployed: v2.0.0 in prod" in mlopsctl(root, "status", check=True).stdout


def test_tagging_without_a_git_identity_fails_clearly(applied: Callable[[str], Path]) -> None:
    root = applied(NAME)
    git(root, "config", "--unset", "user.name")
    git(root, "config", "--unset", "user.email")
    env = {k: v for k, v in ENV.items() if not k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))}
    env.update(HOME=str(root), GIT_CONFIG_NOSYSTEM="1", XDG_CONFIG_HOME=str(root))
    edit(root / USECASE, "C: 1.0", "C: 0.5")
    proc = subprocess.run(
        [sys.executable, "-m", "mlopsctl", "apply"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "git has no user identity" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert tags(root) == [f"{NAME}@v1.0.0"]
