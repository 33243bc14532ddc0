"""Pipelines beyond the examples: the annotated SPEC example with a custom stage, SQL sources,
removed use cases, and a failing custom command."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import dvc, dvc_stale, edit, git, make_project, mlopsctl, plan_json, to_run

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).parent.parent / "fixtures" / "spec_example"


def _repo_from(tmp_path: Path, source: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(source, root, ignore=shutil.ignore_patterns("make_data.py", "__pycache__"))
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Test")
    git(root, "config", "user.email", "test@example.com")
    dvc(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "spec example")
    return root


def test_spec_example_with_custom_stage_before_ingest(tmp_path: Path) -> None:
    root = _repo_from(tmp_path, FIXTURE)
    plan = plan_json(root)
    ids = [s["id"] for s in plan["stages"]]
    assert ids.index("churn/featurize") < ids.index("churn/ingest")
    dvc_yaml_missing = not (root / "dvc.yaml").exists()
    assert dvc_yaml_missing  # plan never writes
    res = mlopsctl(root, "apply", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert (root / "data/features.csv").exists()
    assert mlopsctl(root, "plan", "--detailed-exitcode").returncode == 0
    assert dvc_stale(root) == set()
    assert git(root, "status", "--porcelain") == ""
    # the custom stage's dependency changes: it re-runs, and ingest follows (it depends on it)
    edit(root / "src/featurize.py", "\n", "\n# a comment changes the code file\n")
    plan = plan_json(root)
    assert to_run(plan)["churn/featurize"] == "run"
    assert plan["stages"][0]["reasons"][0]["message"].startswith("src/featurize.py changed (")
    assert to_run(plan)["churn/ingest"] == "run"


def test_sql_source_ingests_every_time_and_the_rest_only_if_the_snapshot_changed(
    applied: Callable[[str], Path],
) -> None:
    root = applied("house-prices")  # applied from the CSV file; now the same rows come from SQL
    db = root / "data" / "houses.sqlite"
    import pandas as pd

    pd.read_csv(root / "data" / "houses.csv").to_sql("houses", sqlite3.connect(db), index=False)
    uc = root / "usecases/house-prices.yaml"
    text = uc.read_text()
    start = text.index("  sources:")
    end = text.index("\n", text.index("path: data/houses.csv"))
    uc.write_text(
        text[:start]
        + "  sources:\n"
        + '    houses: {format: sql, url: "${env:HOUSES_DB}", query: "SELECT * FROM houses"}'
        + text[end:]
    )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "read from sqlite")
    from .conftest import ENV

    env = {**ENV, "HOUSES_DB": "sqlite:///data/houses.sqlite"}
    first = mlopsctl(root, "apply", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    plan = plan_json(root)
    assert to_run(plan) == {
        f"house-prices/{s}": "run"
        for s in ("ingest", "validate", "split", "train", "evaluate", "gate")
    }
    assert plan["stages"][0]["reasons"][0]["kind"] == "always-changed"
    again = json.loads(mlopsctl(root, "apply", "--json", env=env, check=True).stdout)
    status = {s["id"]: s["status"] for s in again["stages"]}
    assert status["house-prices/ingest"] == "ran"
    assert status["house-prices/validate"] == "up-to-date"  # the snapshot came out identical
    assert status["house-prices/train"] == "up-to-date"
    assert "HOUSES_DB" not in (root / "dvc.lock").read_text().replace("${env:HOUSES_DB}", "")
    assert "sqlite:///data" not in (root / "dvc.lock").read_text()


def test_removed_use_case_is_planned_for_removal_and_removed(
    applied: Callable[[str], Path],
) -> None:
    root = applied("breast-cancer")  # the first use case applied: the apply runs the second's
    copy = (
        (root / "usecases/breast-cancer.yaml")
        .read_text()
        .replace("name: breast-cancer", "name: second")
    )
    (root / "usecases/second.yaml").write_text(copy)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "two use cases")
    mlopsctl(root, "apply", check=True)
    assert (root / "reports/second/metrics.json").exists()
    git(root, "rm", "-q", "usecases/second.yaml")
    git(root, "commit", "-q", "-m", "drop the second use case")
    plan = plan_json(root)
    assert {s["id"] for s in plan["stages"] if s["action"] == "remove"} == {
        f"second/{s}" for s in ("ingest", "validate", "split", "train", "evaluate", "gate")
    }
    text = mlopsctl(root, "plan").stdout
    assert "  - train" in text and "6 to remove" in text
    mlopsctl(root, "apply", check=True)
    assert not (root / "artifacts/second/model.skops").exists()
    assert not (root / "reports/second/metrics.json").exists()
    assert "second_" not in (root / "dvc.lock").read_text()
    assert mlopsctl(root, "plan", "--detailed-exitcode").returncode == 0
    assert git(root, "status", "--porcelain") == ""
    assert dvc_stale(root) == set()


def test_failing_custom_stage_blocks_its_downstream(tmp_path: Path) -> None:
    root = make_project(tmp_path, "breast-cancer")
    with (root / "usecases/breast-cancer.yaml").open("a") as fh:
        fh.write(
            "stages:\n"
            "  - name: extract\n"
            "    cmd: echo broken >&2; exit 3\n"
            "    outs: [data/extra.csv]\n"
            "    before: validate\n"
        )
    res = mlopsctl(root, "apply", "--json")
    assert res.returncode == 1
    status = {s["id"]: s for s in json.loads(res.stdout)["stages"]}
    assert status["breast-cancer/extract"]["status"] == "failed"
    assert "exited with 3" in status["breast-cancer/extract"]["message"]
    assert "broken" in status["breast-cancer/extract"]["message"]
    assert status["breast-cancer/ingest"]["status"] == "ran"
    for s in ("validate", "split", "train", "evaluate", "gate"):
        assert status[f"breast-cancer/{s}"]["status"] == "blocked"
