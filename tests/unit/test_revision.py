"""Reading applied states from git and the working tree: real repositories, hostile files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlopsctl.gitops import revision
from mlopsctl.gitops.diff import compare
from mlopsctl.gitops.revision import (
    Git,
    RevisionError,
    read_revision,
    read_worktree,
)
from tests.unit.test_imports import PACKAGE, ROOT, imports_of

UC = "churn"
LOCK = """\
schema: '2.0'
stages:
  churn_ingest:
    cmd: mlopsctl run-stage churn/ingest
    deps:
    - path: data/customers.csv
      hash: md5
      md5: 11111111111111111111111111111111
      size: 10
    params:
      usecases/churn.yaml:
        data.sources:
          customers: {format: csv, path: data/customers.csv}
    outs:
    - path: artifacts/churn/snapshot.parquet
      hash: md5
      md5: 22222222222222222222222222222222
      size: 20
  churn_train:
    cmd: mlopsctl run-stage churn/train
    params:
      usecases/churn.yaml:
        model:
          estimator: sklearn.linear_model.LogisticRegression
          params: {C: %s, max_iter: 100}
"""
GATE = {
    "passed": True,
    "primary_metric": "roc_auc",
    "checks": [
        {"metric": "roc_auc", "value": 0.9, "min": 0.8, "max": None, "passed": True},
        {"metric": "rmse", "value": 3.0, "min": None, "max": 5.0, "passed": True},
    ],
}


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z"}
    env["GIT_COMMITTER_DATE"] = env["GIT_AUTHOR_DATE"]
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def write(root: Path, rel: str, content: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, "utf-8")


def applied(root: Path, c: float, metrics: dict[str, float], message: str) -> None:
    """A state as apply leaves it (dvc.lock, metrics, gate verdict), committed."""
    write(root, "dvc.lock", LOCK % c)
    write(root, f"reports/{UC}/metrics.json", json.dumps(metrics))
    write(root, f"reports/{UC}/gate.json", json.dumps(GATE))
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)


@pytest.fixture
def repo(git_repo: Path) -> Path:
    applied(git_repo, 1.0, {"roc_auc": 0.9, "rmse": 3.0, "n_test": 10}, "first")
    applied(git_repo, 0.5, {"roc_auc": 0.92, "rmse": 3.3, "n_test": 10}, "second")
    return git_repo


def test_reads_params_metrics_gate_and_data_at_a_revision(repo: Path) -> None:
    state = read_revision(repo, "HEAD~1")
    assert state.commit == git(repo, "rev-parse", "HEAD~1").strip()
    uc = state.usecases[UC]
    assert uc.params["model.params.C"] == 1.0
    assert uc.params["data.sources.customers.format"] == "csv"
    assert uc.metrics == {"n_test": 10, "rmse": 3.0, "roc_auc": 0.9}
    assert uc.gate is not None and uc.gate.passed
    assert uc.goal_directions() == {"roc_auc": "higher", "rmse": "lower"}
    assert uc.data == {
        "artifacts/churn/snapshot.parquet": "2" * 32,
        "data/customers.csv": "1" * 32,
    }
    assert uc.problems == () and state.problems == ()
    # the working tree is read from disk, uncommitted edits included
    write(repo, f"reports/{UC}/metrics.json", json.dumps({"roc_auc": 0.5}))
    assert read_worktree(repo).usecases[UC].metrics == {"roc_auc": 0.5}


def test_metric_deltas_and_which_way_is_better(repo: Path) -> None:
    d = compare(read_revision(repo, "HEAD~1"), read_revision(repo, "HEAD"))
    (u,) = d.usecases
    assert u.status == "changed"
    assert [(p.path, p.old, p.new) for p in u.params if p.changed] == [("model.params.C", 1.0, 0.5)]
    by = {m.name: m for m in u.metrics}
    assert [m.name for m in u.metrics] == ["roc_auc", "rmse", "n_test"]  # the gate's first
    assert by["roc_auc"].direction == "up" and by["roc_auc"].better is True
    assert by["rmse"].direction == "up" and by["rmse"].better is False  # max: lower is better
    assert by["rmse"].pct == pytest.approx(10.0)
    assert not by["n_test"].changed and by["n_test"].better is None


def test_unknown_revision_is_one_clear_error(repo: Path) -> None:
    for rev in ("nope", "--output=/tmp/x", "HEAD~99", ""):
        with pytest.raises(RevisionError) as exc:
            read_revision(repo, rev)
        assert exc.value.message.startswith("unknown revision"), exc.value.message


def test_not_a_git_repository(tmp_path: Path) -> None:
    with pytest.raises(RevisionError, match="is not in a git repository"):
        Git(tmp_path)


@pytest.mark.parametrize(
    ("lock", "problem"),
    [
        ("stages: [unclosed\n", "dvc.lock: not valid YAML (line 2, column 1)"),
        ("just text\n", "dvc.lock: not a DVC lock file (no 'stages' mapping)"),
        ("[" * 5000 + "]" * 5000, "dvc.lock: "),
        (
            # a billion laughs: nine levels of nine aliases, tiny as YAML, huge as a tree
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n"
                for i in range(8)
            )
            + "stages:\n  churn_train:\n    cmd: x\n    params:\n"
            + "      f.yaml:\n        model: *i\n",
            "dvc.lock: too large or too deeply nested to read",
        ),
    ],
)
def test_malformed_lock_is_a_problem_not_a_traceback(
    git_repo: Path, lock: str, problem: str
) -> None:
    write(git_repo, "dvc.lock", lock)
    write(git_repo, f"reports/{UC}/metrics.json", json.dumps({"roc_auc": 0.9}))
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "hostile")
    for state in (read_revision(git_repo, "HEAD"), read_worktree(git_repo)):
        assert len(state.problems) == 1 and state.problems[0].startswith(problem), state.problems
        # the reports are still read: the use case is found through reports/
        assert state.usecases[UC].metrics == {"roc_auc": 0.9}


def test_hostile_reports_are_marked_unreadable(git_repo: Path) -> None:
    write(git_repo, "dvc.lock", LOCK % 1.0)
    write(git_repo, f"reports/{UC}/metrics.json", b"\xff\xfe not json")
    write(git_repo, f"reports/{UC}/gate.json", json.dumps({"checks": "nope"}))
    write(git_repo, f"reports/{UC}/monitoring/breach.json", "[" * 100_000)
    write(git_repo, "reports/big/metrics.json", " " * (revision.MAX_REPORT_BYTES + 1) + "{}")
    (git_repo / "reports/evil").mkdir(parents=True)
    (git_repo / "reports/evil/metrics.json").symlink_to("/etc/passwd")
    (git_repo / "reports/evil/gate.json").mkdir()
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "hostile")
    expected = {
        UC: [
            f"reports/{UC}/metrics.json: not valid JSON",
            f"reports/{UC}/gate.json: no 'passed' verdict",
            f"reports/{UC}/monitoring/breach.json: not valid JSON",
        ],
        "big": ["reports/big/metrics.json: too large"],
    }
    at_rev = read_revision(git_repo, "HEAD")
    on_disk = read_worktree(git_repo)
    for state in (at_rev, on_disk):
        for name, problems in expected.items():
            got = state.usecases[name].problems
            assert len(got) == len(problems) and all(
                g.startswith(p) for g, p in zip(got, problems, strict=True)
            ), got
        assert state.usecases[UC].params["model.params.C"] == 1.0  # the lock still counts
    # a symlink: git stores its target (never followed), the working tree refuses it
    assert at_rev.usecases["evil"].problems[0] == "reports/evil/metrics.json: not valid JSON"
    assert on_disk.usecases["evil"].problems[:2] == (
        "reports/evil/metrics.json: is not a regular file (a symlink or a directory)",
        "reports/evil/gate.json: is not a regular file (a symlink or a directory)",
    )
    assert at_rev.usecases["evil"].metrics == {}


def test_a_reports_symlink_out_of_the_repository_is_not_followed(
    git_repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside" / UC
    write(outside, "metrics.json", json.dumps({"roc_auc": 1.0}))
    (git_repo / "reports").symlink_to(outside.parent)
    state = read_worktree(git_repo, names=[UC])
    assert state.usecases[UC].metrics == {}
    problem = state.usecases[UC].problems[0]
    assert problem.endswith("lies outside the repository (through a symlink)")
    assert read_worktree(git_repo).usecases == {}  # reports/ itself is not listed either


def test_huge_lock_at_a_revision_is_not_read(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(git_repo, "dvc.lock", LOCK % 1.0 + "#" * 4096 + "\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "big")
    monkeypatch.setattr(revision, "MAX_LOCK_BYTES", 4096)  # as if the file were 32 MiB
    state = read_revision(git_repo, "HEAD")
    assert state.usecases == {}
    assert state.problems[0].startswith("dvc.lock: too large (")


def test_hostile_stage_names_are_ignored(git_repo: Path) -> None:
    write(
        git_repo,
        "dvc.lock",
        'stages:\n  ../x_train: {cmd: x}\n  UP_train: {cmd: x}\n  "a\\nb_train": {cmd: x}\n'
        "  ok_train: {cmd: x}\n",
    )
    # a directory "ok\n" would put a second line into git cat-file's input
    write(git_repo, "reports/ok\n/metrics.json", json.dumps({"roc_auc": 1.0}))
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "names")
    for state in (read_revision(git_repo, "HEAD"), read_worktree(git_repo)):
        assert list(state.usecases) == ["ok"]
        assert state.usecases["ok"].metrics == {}


def test_the_readers_import_no_execution_layer() -> None:
    """diff, history and the comparison run on plan's light path: no execute, stages,
    integrations (GitPython, DVC), cli or views."""
    forbidden = ("execute", "stages", "integrations", "cli", "report")
    for name in ("revision", "diff", "history", "review"):
        path = PACKAGE / "gitops" / f"{name}.py"
        bad = [
            m
            for _line, m in imports_of(path, ROOT)
            if any(m == f"mlopsctl.{f}" or m.startswith(f"mlopsctl.{f}.") for f in forbidden)
        ]
        assert bad == [], f"{path.name} imports {bad}"


def test_diff_cli_on_hostile_files_warns_and_exits_0(git_repo: Path) -> None:
    write(git_repo, "mlopsctl.yaml", "apiVersion: mlopsctl/v1\nkind: Project\n")
    write(git_repo, "dvc.lock", "stages: [unclosed\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "broken")
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "mlopsctl", "-C", str(git_repo), "diff"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "warning: HEAD: dvc.lock: not valid YAML (line 2, column 1)" in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "mlopsctl", "-C", str(git_repo), "diff", "nope"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 1
    assert bad.stderr == "error: unknown revision 'nope'\n"


def test_names_and_messages_from_a_revision_cannot_drive_the_terminal(git_repo: Path) -> None:
    write(git_repo, f"reports/{UC}/metrics.json", json.dumps({"roc\x1b[31m\nauc": 0.5}))
    breach = {"breach": True, "reasons": ["drift\r\x1b]0;owned\x07"]}
    write(git_repo, f"reports/{UC}/monitoring/breach.json", json.dumps(breach))
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "escapes")
    uc = read_revision(git_repo, "HEAD").usecases[UC]
    assert uc.metrics == {"roc?[31m?auc": 0.5}
    assert uc.monitoring is not None and uc.monitoring.reasons == ("drift??]0;owned?",)


def test_a_project_in_a_subdirectory_of_the_repository(git_repo: Path) -> None:
    sub = git_repo / "ml" / "project"
    applied(sub, 1.0, {"roc_auc": 0.9}, "in a subdirectory")
    (git_repo / "dvc.lock").write_text("not: the project's\n", "utf-8")  # the repo root's
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "a decoy at the top")
    state = read_revision(sub, "HEAD")
    assert state.problems == ()
    assert state.usecases[UC].params["model.params.C"] == 1.0
    assert state.usecases[UC].metrics == {"roc_auc": 0.9}
