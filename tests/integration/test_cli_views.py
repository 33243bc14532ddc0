"""plan/graph/status views, saved-plan schema, CI guard and --no-commit, through the CLI."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from .conftest import ENV, edit, git, make_project, mlopsctl, plan_json

pytestmark = pytest.mark.slow
UC = "usecases/breast-cancer.yaml"


def _plan_schema() -> dict[str, object]:
    text = resources.files("mlopsctl").joinpath("schemas", "plan.schema.json").read_text()
    schema: dict[str, object] = json.loads(text)
    return schema


def test_plan_json_matches_its_published_schema(applied: Callable[[str], Path]) -> None:
    root = applied("breast-cancer")
    validator = jsonschema.Draft202012Validator(_plan_schema())
    validator.validate(plan_json(root))  # no changes
    edit(root / UC, "C: 1.0", "C: 0.5")
    (root / "reports/breast-cancer/metrics.json").unlink()
    plan = plan_json(root)
    validator.validate(plan)
    kinds = {r["kind"] for s in plan["stages"] for r in s["reasons"]}
    assert {"param", "out-missing", "upstream"} <= kinds
    mlopsctl(root, "plan", "-o", "saved.json", check=True)
    validator.validate(json.loads((root / "saved.json").read_text()))


def test_markdown_plan_is_a_pull_request_comment(applied: Callable[[str], Path]) -> None:
    root = applied("breast-cancer")
    edit(root / UC, "C: 1.0", "C: 0.5")
    md = mlopsctl(root, "plan", "--format", "markdown", check=True).stdout
    assert md.startswith("<!-- mlopsctl:plan -->\n### mlopsctl plan\n")
    assert "**Plan: 3 to run, 3 up to date, 0 to remove.**" in md
    assert "| breast-cancer | `train` | ~ run | model.params.C: 1.0 -> 0.5 |" in md
    assert "<details><summary>3 stages up to date</summary>" in md


def test_plan_selects_one_use_case_and_rejects_unknown(applied: Callable[[str], Path]) -> None:
    root = applied("breast-cancer")
    assert {s["usecase"] for s in plan_json(root, "-u", "breast-cancer")["stages"]} == {
        "breast-cancer"
    }
    bad = mlopsctl(root, "plan", "-u", "breast-cancr", "--detailed-exitcode")
    assert bad.returncode == 1  # a usage error is 1, so that 2 only means "changes"
    assert "unknown use case 'breast-cancr' (did you mean 'breast-cancer'?)" in bad.stderr


def test_graph_formats(applied: Callable[[str], Path]) -> None:
    root = applied("breast-cancer")
    edit(root / UC, "C: 1.0", "C: 0.5")
    mermaid = mlopsctl(root, "graph", "--format", "mermaid", check=True).stdout
    assert mermaid.startswith("flowchart LR\n")
    assert "breast_cancer__ingest --> breast_cancer__validate" in mermaid
    assert "class breast_cancer__train,breast_cancer__evaluate,breast_cancer__gate run" in mermaid
    dot = mlopsctl(root, "graph", "--format", "dot", check=True).stdout
    assert '"breast-cancer/split" -> "breast-cancer/train";' in dot
    assert '"breast-cancer/ingest" -> "breast-cancer/split";' not in dot  # transitively reduced
    ascii_ = mlopsctl(root, "graph", check=True).stdout
    assert "train     <- split" in ascii_ and "[run]" in ascii_ and "[up-to-date]" in ascii_


def test_status_in_sync_out_of_sync_and_failing_gate(applied: Callable[[str], Path]) -> None:
    root = applied("breast-cancer")
    st = json.loads(mlopsctl(root, "status", "--json", check=True).stdout)
    assert st[0]["state"] == "in sync" and st[0]["gate"] == "passed"
    assert st[0]["metrics"]["roc_auc"] > 0.95
    edit(root / UC, "C: 1.0", "C: 0.5")
    st = json.loads(mlopsctl(root, "status", "--json", check=True).stdout)
    assert st[0]["state"] == "out of sync"
    assert st[0]["reasons"] == ["train: model.params.C: 1.0 -> 0.5"]
    # back to the applied C, and a bound it misses: the apply runs the gate alone (no retrain)
    edit(root / UC, "C: 0.5", "C: 1.0")
    edit(root / UC, "min: 0.95", "min: 0.9999")
    assert mlopsctl(root, "apply").returncode == 1
    st = json.loads(mlopsctl(root, "status", "--json", check=True).stdout)
    assert st[0]["state"] == "failing gate" and st[0]["gate"] == "failed"
    assert st[0]["reasons"][0].startswith("roc_auc = 0.99")
    text = mlopsctl(root, "status", check=True).stdout
    assert "failing gate" in text


def test_apply_in_ci_refuses_uncommitted_specs_and_no_commit_commits_nothing(
    applied: Callable[[str], Path],
) -> None:
    root = applied("breast-cancer")  # applied with C 1.0: a new C re-runs train and after
    lock = (root / "dvc.lock").read_text()
    edit(root / UC, "C: 1.0", "C: 0.5")
    refused = mlopsctl(root, "apply", env={**ENV, "CI": "true"})
    assert refused.returncode == 1
    assert "refusing to apply specs that are not committed (CI is set)" in refused.stderr
    assert (root / "dvc.lock").read_text() == lock  # nothing ran
    head = git(root, "rev-parse", "HEAD")
    done = mlopsctl(root, "apply", "--no-commit", check=True)
    assert "uncommitted changes to usecases/breast-cancer.yaml" not in done.stderr
    assert git(root, "rev-parse", "HEAD") == head
    assert (root / "dvc.lock").read_text() != lock  # it ran, and recorded C 0.5
    assert mlopsctl(root, "plan", "--detailed-exitcode").returncode == 0


def test_git_without_identity_is_a_clear_error(tmp_path: Path) -> None:
    root = make_project(tmp_path, "breast-cancer")
    git(root, "config", "--unset", "user.name")
    git(root, "config", "--unset", "user.email")
    env = {**ENV, "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    env.pop("GIT_AUTHOR_NAME", None)
    env.pop("GIT_COMMITTER_NAME", None)
    res = mlopsctl(root, "apply", env=env)
    assert res.returncode == 1
    assert "git has no user identity" in res.stderr
    assert not (root / "dvc.lock").exists()  # refused before anything ran


def test_apply_lines_say_restored_once_and_the_failed_summary_shows_the_gate_bounds(
    applied: Callable[[str], Path],
) -> None:
    root = applied("breast-cancer")
    (root / "reports/breast-cancer/metrics.json").unlink()
    restored = mlopsctl(root, "apply", check=True).stdout
    assert re.search(
        r"^breast-cancer/evaluate: restored from (the DVC )?cache( \(\d+\.\ds\))?$", restored, re.M
    )
    assert "restored: restored" not in restored

    edit(root / UC, "roc_auc: {min: 0.95}", "roc_auc: {min: 0.9999}")
    failed = mlopsctl(root, "apply")
    assert failed.returncode == 1
    summary = failed.stdout[failed.stdout.index("\nFailed:\n") :].splitlines()
    assert re.fullmatch(
        r"  breast-cancer/gate: quality gate failed for use case 'breast-cancer': "
        r"roc_auc = 0\.9\d{3}, required >= 0\.9999",
        summary[2],
    ), summary


def test_outputs_get_the_mode_a_normal_write_gives(tmp_path: Path) -> None:
    old = os.umask(0o027)  # not the usual 022, so that a hard-coded 0644 cannot pass
    try:
        root = make_project(tmp_path, "breast-cancer")
        mlopsctl(root, "apply", check=True)
    finally:
        os.umask(old)
    outputs = [p for d in ("reports", "artifacts") for p in (root / d).rglob("*") if p.is_file()]
    assert {p.relative_to(root).as_posix() for p in outputs} >= {
        "reports/breast-cancer/metrics.json",
        "artifacts/breast-cancer/model.skops",
        "artifacts/breast-cancer/train.parquet",
    }
    modes = {p.relative_to(root).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in outputs}
    assert modes == dict.fromkeys(modes, 0o666 & ~0o027)
