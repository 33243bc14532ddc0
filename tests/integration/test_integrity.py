"""The ledger never lies: what ran is what dvc.lock, the .dvc files, the remote and git say.

Each test reproduces a defect of the engine as first released (issue 6) on a real git + DVC
repository: edited data that never reached DVC, a failed push that was never retried, a torn
dvc.lock read as an empty state, a commit that claimed a gate verdict this apply never computed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import dvc, edit, git, mlopsctl, plan_json

pytestmark = pytest.mark.slow

ROW = "10001,132.9,5,16,11.38,outskirts,E,yes,325.1"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def dvcfile_md5(path: Path) -> str:
    for line in path.read_text("utf-8").splitlines():
        if line.strip().startswith("- md5:") or line.strip().startswith("md5:"):
            return line.split("md5:", 1)[1].strip()
    raise AssertionError(f"no md5 in {path}")


def fresh_clone_plans_nothing(root: Path, tmp: Path) -> Path:
    """git clone + dvc pull: the clone has the same data and plans nothing."""
    clone = tmp / "clone"
    git(root.parent, "clone", "-q", str(root), str(clone))
    dvc(clone, "pull", "-q")
    p = mlopsctl(clone, "plan", "--detailed-exitcode")
    assert p.returncode == 0, p.stdout + p.stderr
    cloud = dvc(clone, "status", "-c", "--json").stdout.strip()
    assert cloud in ("{}", ""), cloud  # the remote holds every object the clone names
    return clone


def test_edited_source_is_recorded_cached_pushed_and_committed(
    applied: Callable[[str], Path], tmp_path: Path
) -> None:
    root = applied("house-prices")
    data = root / "data/houses.csv"
    edit(data, ROW, ROW.replace("325.1", "331.7"))
    plan = plan_json(root)
    assert [s["path"] for s in plan["sources"]] == ["data/houses.csv"]
    assert plan["sources"][0]["new"] == md5(data)
    assert "data/houses.csv changed" in mlopsctl(root, "plan").stdout
    assert mlopsctl(root, "plan", "--detailed-exitcode").returncode == 2

    a = mlopsctl(root, "apply")
    assert a.returncode == 0, a.stdout + a.stderr
    assert "recorded the new data/houses.csv in data/houses.csv.dvc" in a.stdout
    assert dvcfile_md5(root / "data/houses.csv.dvc") == md5(data)
    assert dvc(root, "status", "--json").stdout.strip() in ("{}", "")
    assert git(root, "status", "--porcelain") == ""
    message = git(root, "log", "-1", "--format=%B")
    assert f"Mlopsctl-Source: data/houses.csv md5:{md5(data)}" in message
    clone = fresh_clone_plans_nothing(root, tmp_path)
    assert md5(clone / "data/houses.csv") == md5(data)


def test_plain_dvc_repro_after_a_data_edit_then_apply_records_and_pushes(
    applied: Callable[[str], Path], tmp_path: Path
) -> None:
    root = applied("house-prices")
    edit(root / "data/houses.csv", ROW, ROW.replace("325.1", "318.0"))
    dvc(root, "repro", "-q")  # runs and records the stages; pushes nothing
    plan = plan_json(root)
    assert [s["action"] for s in plan["stages"]] == ["up-to-date"] * 6
    a = mlopsctl(root, "apply")
    assert a.returncode == 0, a.stdout + a.stderr
    assert "pushed" in a.stdout  # what dvc repro produced reaches the remote
    assert mlopsctl(root, "plan", "--detailed-exitcode").returncode == 0
    assert git(root, "status", "--porcelain") == ""  # apply committed what dvc repro wrote
    fresh_clone_plans_nothing(root, tmp_path)


def test_failed_push_is_retried_and_status_says_what_is_not_pushed(
    applied: Callable[[str], Path], tmp_path: Path
) -> None:
    root = applied("breast-cancer")
    remote = tmp_path / "remote"
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    dvc(root, "remote", "modify", "storage", "url", str(blocker / "remote"))
    git(root, "commit", "-q", "-am", "a broken remote")
    edit(root / "usecases/breast-cancer.yaml", "C: 1.0", "C: 0.5")
    git(root, "commit", "-q", "-am", "C 0.5")

    a = mlopsctl(root, "apply")
    assert a.returncode == 1
    errors = [ln for ln in a.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "push to DVC remote 'storage' failed" in errors[0], a.stderr
    assert "Not a directory" in errors[0]
    message = git(root, "log", "-1", "--format=%B")
    assert message.startswith("mlopsctl apply: breast-cancer"), message  # recorded and committed

    dvc(root, "remote", "modify", "storage", "url", str(remote))
    git(root, "commit", "-q", "-am", "fix the remote")
    st = json.loads(mlopsctl(root, "status", "--json", check=True).stdout)
    # the new model, and the reference profile of its predictions on the training set
    assert st[0]["not_pushed"] == [
        "artifacts/breast-cancer/model.skops",
        "artifacts/breast-cancer/reference_profile.json",
    ]
    text = mlopsctl(root, "status").stdout
    assert "not pushed: 2 object(s)" in text
    assert mlopsctl(root, "status", "--remote").returncode == 1

    again = mlopsctl(root, "apply")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes" in again.stdout and "pushed 2 file(s)" in again.stdout
    assert mlopsctl(root, "status", "--remote").returncode == 0
    assert git(root, "status", "--porcelain") == ""
    fresh_clone_plans_nothing(root, tmp_path)


@pytest.mark.parametrize("content", ["", "\n", "schema: '2.0'\nstages:\n  x: [unclosed\n"])
def test_empty_or_torn_lock_is_an_error_naming_the_remedy(
    applied: Callable[[str], Path], content: str
) -> None:
    root = applied("breast-cancer")
    (root / "dvc.lock").write_text(content)
    for args in (["plan"], ["plan", "--format", "json"], ["status"], ["apply"]):
        p = mlopsctl(root, *args)
        assert p.returncode == 1, (args, p.stdout, p.stderr)
        assert "git checkout -- dvc.lock" in p.stderr, (args, p.stderr)
        assert "new use case" not in p.stdout and "never applied" not in p.stdout
    git(root, "checkout", "--", "dvc.lock")
    assert mlopsctl(root, "plan", "--detailed-exitcode").returncode == 0


def test_failed_data_check_commits_the_truth(applied: Callable[[str], Path]) -> None:
    root = applied("house-prices")
    edit(root / "data/houses.csv", ROW, ROW.replace("132.9", "999.0"))  # area max is 400
    a = mlopsctl(root, "apply")
    assert a.returncode == 1
    message = git(root, "log", "-1", "--format=%B")
    assert message.startswith("mlopsctl apply: house-prices"), message
    assert "failed: validate" in message and "blocked: split, train, evaluate, gate" in message
    assert "Mlopsctl-Gate: house-prices not reached (validate failed)" in message
    assert "passed" not in message
    snap = md5(root / "artifacts/house-prices/snapshot.parquet")
    assert f"Mlopsctl-Data: house-prices artifacts/house-prices/snapshot.parquet md5:{snap}" in (
        message
    )


def test_nothing_to_do_makes_no_commit_claiming_work(applied: Callable[[str], Path]) -> None:
    root = applied("breast-cancer")
    head = git(root, "rev-parse", "HEAD")
    a = mlopsctl(root, "apply")
    assert a.returncode == 0 and "No changes" in a.stdout
    assert git(root, "rev-parse", "HEAD") == head
    edit(root / "usecases/breast-cancer.yaml", "description:", "description: Now with more words.")
    a = mlopsctl(root, "apply")
    assert a.returncode == 0, a.stderr
    message = git(root, "log", "-1", "--format=%B")
    assert message.startswith("mlopsctl apply: commit project files (no stage ran)"), message
    assert "usecases/breast-cancer.yaml" in message
    assert "Mlopsctl-Gate" not in message and "ran:" not in message


def test_runs_that_depend_on_upstream_results_are_conditional_in_the_plan(
    applied: Callable[[str], Path],
) -> None:
    root = applied("breast-cancer")
    edit(root / "usecases/breast-cancer.yaml", "C: 1.0", "C: 0.5")
    stages = {s["stage"]: s for s in plan_json(root)["stages"]}
    assert stages["train"]["action"] == "run" and "conditional" not in stages["train"]
    assert stages["evaluate"]["conditional"] is True
    assert stages["gate"]["conditional"] is True
    forced = {s["stage"]: s for s in plan_json(root, "--force")["stages"]}
    assert not any(s.get("conditional") for s in forced.values())
