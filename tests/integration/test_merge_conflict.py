"""Two branches that both applied: the dvc.lock merge conflict and its documented resolution.

docs/gitops.md: take one side of dvc.lock and reports/ whole, commit the merge, and apply
restores from the cache what either side already computed and recomputes only the rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mlopsctl.errors import StateError
from mlopsctl.plan.state import read_state
from tests.integration.conftest import copy_project, edit, git, mlopsctl, run

UC = "usecases/breast-cancer.yaml"


def _apply(root: Path) -> dict[str, str]:
    """Apply; each stage's outcome (ran, restored, up-to-date)."""
    proc = mlopsctl(root, "apply", "--json", check=True)
    result = json.loads(proc.stdout)
    assert result["ok"], proc.stdout
    return {s["id"].split("/", 1)[1]: s["status"] for s in result["stages"]}


def _two_branches_that_applied(root: Path) -> None:
    """Branch `tune` changes model.params.C, branch `gate` changes goal.metrics.f1 (same use
    case, different lines); each applies and commits. Leaves `gate` checked out."""
    git(root, "checkout", "-q", "-b", "tune")
    edit(root / UC, "C: 1.0,", "C: 0.5,")
    git(root, "commit", "-q", "-am", "tune: C 0.5")
    assert _apply(root)["train"] == "ran"
    git(root, "checkout", "-q", "main")
    git(root, "checkout", "-q", "-b", "gate")
    edit(root / UC, "f1: {min: 0.90}", "f1: {min: 0.85}")
    git(root, "commit", "-q", "-am", "gate: f1 0.85")
    assert _apply(root)["gate"] == "ran"


@pytest.fixture(scope="module")
def two_branches(
    applied_template: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The applied example and both branches applied, built once: each test takes a copy."""
    base = tmp_path_factory.mktemp("two-branches")
    _two_branches_that_applied(copy_project(applied_template("breast-cancer"), base))
    return base


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("side", "expected"),
    [
        # theirs: tune's lock (its model, C 0.5) is the state; the workspace holds gate's model
        ("MERGE_HEAD", {"train": "restored", "gate": "ran"}),
        # ours: gate's lock (C 1.0): train and evaluate of C 0.5 come from the run-cache
        ("HEAD", {"train": "restored", "evaluate": "restored", "gate": "ran"}),
    ],
)
def test_merging_two_applied_branches_conflicts_and_resolves_by_taking_one_side(
    two_branches: Path, tmp_path: Path, side: str, expected: dict[str, str]
) -> None:
    root = copy_project(two_branches, tmp_path)  # on `gate`, both branches applied

    merge = run(["git", "merge", "-q", "tune", "-m", "merge tune"], root)
    assert merge.returncode == 1, merge.stdout + merge.stderr
    unmerged = git(root, "diff", "--name-only", "--diff-filter=U").split()
    assert "dvc.lock" in unmerged
    assert "<<<<<<< " in (root / "dvc.lock").read_text("utf-8")
    # the spec merged cleanly: both changes are in it
    spec = (root / UC).read_text("utf-8")
    assert "C: 0.5," in spec and "f1: {min: 0.85}" in spec

    # while the conflict stands: one clear error naming the fix, never a traceback
    for args in (["plan"], ["status"], ["plan", "--detailed-exitcode"], ["apply"]):
        res = mlopsctl(root, *args)  # the helper asserts there is no traceback
        assert res.returncode == 1, (args, res.stdout, res.stderr)
        [message] = _errors(res.stderr)
        assert message.startswith("error: dvc.lock has git merge conflict markers (line ")
        assert "git checkout MERGE_HEAD -- dvc.lock reports/" in message
        assert "docs/gitops.md" in message

    # the resolution of docs/gitops.md
    git(root, "checkout", side, "--", "dvc.lock", "reports/")
    assert git(root, "diff", "--name-only", "--diff-filter=U") == ""
    git(root, "commit", "-q", "--no-edit")

    plan = json.loads(mlopsctl(root, "plan", "--format", "json", check=True).stdout)
    planned = {s["id"].split("/", 1)[1]: s["action"] for s in plan["stages"]}
    assert {k for k, v in planned.items() if v != "up-to-date"} == set(expected)
    assert planned["gate"] == "run"  # f1's new bound was never checked against C 0.5's metrics

    outcome = _apply(root)
    assert {k: v for k, v in outcome.items() if v != "up-to-date"} == expected
    assert mlopsctl(root, "plan", "--detailed-exitcode").returncode == 0
    assert git(root, "status", "--porcelain") == ""
    # the committed verdict is the merged spec's: C 0.5's f1 against the new bound of 0.85
    verdict = json.loads((root / "reports/breast-cancer/gate.json").read_text("utf-8"))
    f1 = next(c for c in verdict["checks"] if c["metric"] == "f1")
    assert f1["min"] == 0.85
    tuned = json.loads(git(root, "show", "tune:reports/breast-cancer/metrics.json"))
    assert f1["value"] == pytest.approx(tuned["f1"])


CONFLICTED = """\
schema: '2.0'
stages:
  churn_gate:
    cmd: mlopsctl run-stage churn/gate
    params:
      usecases/churn.yaml:
<<<<<<< HEAD
        goal.metrics: {f1: {min: 0.85}}
=======
        goal.metrics: {f1: {min: 0.9}}
>>>>>>> tune
"""


def test_conflict_markers_in_dvc_lock_are_named_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "dvc.lock").write_text(CONFLICTED, "utf-8")
    with pytest.raises(StateError, match=r"merge conflict markers \(line 7\)") as exc:
        read_state(tmp_path)
    assert "git checkout MERGE_HEAD -- dvc.lock reports/" in exc.value.message
