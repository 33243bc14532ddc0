"""diff, history and the pull-request comment, read from real git history through the CLI.

The fast tests write applied states by hand (dvc.lock and reports as apply leaves them); the
slow ones apply the breast-cancer example for real, twice.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from tests.integration.conftest import ENV, copy_project, dvc, edit, git, make_project, mlopsctl

UC = "usecases/breast-cancer.yaml"
NO_BASE_ENV = {k: v for k, v in ENV.items() if k != "GITHUB_BASE_REF"}


# --- hand-made states (fast) ---------------------------------------------------------------------

LOCK = """\
schema: '2.0'
stages:
  churn_ingest:
    cmd: mlopsctl run-stage churn/ingest
    deps:
    - {path: data/customers.csv, hash: md5, md5: %s, size: 10}
    outs:
    - {path: artifacts/churn/snapshot.parquet, hash: md5, md5: %s, size: 20}
  churn_train:
    cmd: mlopsctl run-stage churn/train
    params:
      usecases/churn.yaml:
        model:
          params: {C: %s}
%s"""
OTHER = """\
  fraud_train:
    cmd: mlopsctl run-stage fraud/train
    params:
      usecases/fraud.yaml:
        model: {params: {depth: %s}}
"""


def _gate(roc_auc: float, passed: bool = True) -> str:
    check = {"metric": "roc_auc", "value": roc_auc, "min": 0.8, "max": None, "passed": passed}
    return json.dumps({"passed": passed, "primary_metric": "roc_auc", "checks": [check]})


def _commit(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD").strip()


def _state(
    root: Path, c: float, roc_auc: float, data: str = "1" * 32, depth: int = 3, passed: bool = True
) -> None:
    (root / "reports/churn").mkdir(parents=True, exist_ok=True)
    lock = LOCK % (data, "2" * 32, c, OTHER % depth)
    (root / "dvc.lock").write_text(lock, "utf-8")
    metrics = {"roc_auc": roc_auc, "n_test": 100}
    (root / "reports/churn/metrics.json").write_text(json.dumps(metrics), "utf-8")
    (root / "reports/churn/gate.json").write_text(_gate(roc_auc, passed), "utf-8")


@pytest.fixture
def history_repo(tmp_path: Path) -> tuple[Path, list[str]]:
    """Three states of churn, and a commit in between that only touched fraud."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Test")
    git(root, "config", "user.email", "test@example.com")
    (root / "mlopsctl.yaml").write_text("apiVersion: mlopsctl/v1\nkind: Project\n", "utf-8")
    _commit(root, "start")
    _state(root, 1.0, 0.90)
    first = _commit(
        root,
        "mlopsctl apply: churn\n\nchurn: ran: ingest, train\n\nMlopsctl-Plan: aaaaaaaaaaaa\n"
        "Mlopsctl-Gate: churn passed (roc_auc=0.9)\nMlopsctl-Gate: fraud passed (x=1)\n",
    )
    _state(root, 1.0, 0.90, depth=4)
    _commit(root, "mlopsctl apply: fraud")
    _state(root, 0.5, 0.85, data="3" * 32, depth=4, passed=False)
    (root / "reports/churn/monitoring").mkdir()
    breach = {"breach": True, "id": "x", "reasons": ["drift: age PSI 0.31 > 0.20"]}
    (root / "reports/churn/monitoring/breach.json").write_text(json.dumps(breach), "utf-8")
    second = _commit(root, "by hand")
    git(root, "tag", "-a", "churn@v1.0.0", "-m", "churn 1.0.0", first)
    git(root, "tag", "churn@v1.1.0", first)  # lightweight: GTO (and mlopsctl) ignore it
    git(root, "tag", "churn@vnext", second)  # not SemVer: no version
    git(root, "tag", "fraud@v9.0.0", second)  # another use case's
    return root, [second, first]


def test_diff_text_and_json_from_git(history_repo: tuple[Path, list[str]]) -> None:
    root, _ = history_repo
    proc = mlopsctl(root, "diff", "HEAD~2", "-u", "churn", check=True)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Comparing HEAD~2 (") and lines[0].endswith(") with workspace")
    assert lines[1:] == [
        "churn (changed)",
        "  param           HEAD~2  workspace",
        "  model.params.C  1.0     0.5",
        "  metric   HEAD~2  workspace  change",
        "  roc_auc  0.9     0.85       -0.05 (-5.56%) ▼ worse",
        "  data data/customers.csv: 1111111 -> 3333333",
        "  gate: passed (HEAD~2) -> failed (workspace)",
        "  monitoring: - (HEAD~2) -> breach (workspace)",
    ]
    out = json.loads(mlopsctl(root, "diff", "HEAD~2", "--json", check=True).stdout)
    assert out["old"]["rev"] == "HEAD~2" and out["new"] == {
        "rev": "workspace",
        "commit": None,
        "problems": [],
    }
    churn, fraud = out["usecases"]
    assert churn["params"] == [{"path": "model.params.C", "old": 1.0, "new": 0.5}]
    (m,) = churn["metrics"]
    assert m["name"] == "roc_auc" and m["old"] == 0.9 and m["new"] == 0.85
    assert m["delta"] == pytest.approx(-0.05) and m["pct"] == pytest.approx(-5.5556, abs=1e-3)
    assert (m["direction"], m["better"]) == ("down", False)
    assert churn["gate"] == {"old": "passed", "new": "failed"}
    assert churn["monitoring"] == {"old": None, "new": "breach"}
    assert fraud["params"] == [{"path": "model.params.depth", "old": 3, "new": 4}]
    assert fraud["metrics"] == []
    # nothing changed since HEAD; --all lists it anyway
    same = mlopsctl(root, "diff", check=True).stdout.splitlines()
    assert same[1:] == ["churn: no changes", "fraud: no changes"]
    full = json.loads(mlopsctl(root, "diff", "--all", "--json", "-u", "churn", check=True).stdout)
    assert [m["name"] for m in full["usecases"][0]["metrics"]] == ["roc_auc", "n_test"]
    md = mlopsctl(root, "diff", "HEAD~2", "--format", "markdown", check=True).stdout
    assert "| roc_auc | 0.9 | 0.85 | -0.05 (-5.56%) ▼ worse |" in md
    bad = mlopsctl(root, "diff", "HEAD~2", "-u", "chrun")
    assert bad.returncode == 1
    assert "unknown use case 'chrun' (did you mean 'churn'?)" in bad.stderr


def test_history_rows_are_the_commits_that_changed_the_use_case(
    history_repo: tuple[Path, list[str]],
) -> None:
    root, (second, first) = history_repo
    out = json.loads(mlopsctl(root, "history", "churn", "--format", "json", check=True).stdout)
    assert out["usecase"] == "churn"
    rows = out["rows"]
    assert [r["commit"] for r in rows] == [second, first]  # the fraud-only apply is not one
    keys = {
        "commit",
        "date",
        "author",
        "subject",
        "apply",
        "version",
        "versions",
        "data",
        "params_changed",
        "metrics",
        "gate",
        "monitoring",
        "trailers",
        "problems",
    }
    assert all(set(r) == keys for r in rows)
    new, old = rows
    assert new == {
        "commit": second,
        "date": "2026-01-01T00:00:00+00:00",
        "author": "Test <test@example.com>",
        "subject": "by hand",
        "apply": False,
        "version": None,
        "versions": [],
        "data": {"artifacts/churn/snapshot.parquet": "2" * 32, "data/customers.csv": "3" * 32},
        "params_changed": [{"path": "model.params.C", "old": 1.0, "new": 0.5}],
        "metrics": {"n_test": 100, "roc_auc": 0.85},
        "gate": {
            "passed": False,
            "checks": [
                {"metric": "roc_auc", "value": 0.85, "min": 0.8, "max": None, "passed": False}
            ],
        },
        "monitoring": {"breach": True, "reasons": ["drift: age PSI 0.31 > 0.20"]},
        "trailers": {},
        "problems": [],
    }
    assert old["apply"] is True
    assert (old["version"], old["versions"]) == ("v1.0.0", ["v1.0.0"])
    assert old["trailers"] == {"plan": "aaaaaaaaaaaa", "gate": "passed (roc_auc=0.9)"}
    added = {"path": "model.params.C", "old": None, "new": 1.0, "added": True}
    assert old["params_changed"] == [added]
    assert old["gate"]["passed"] is True

    text = mlopsctl(root, "history", "churn", check=True).stdout.splitlines()
    assert text[0] == "churn: 2 applied states, newest first"
    head = ["commit", "date", "author", "version", "gate", "roc_auc", "monitoring", "data"]
    assert text[1].split() == head
    assert text[2].split()[:7] == [
        second[:7],
        "2026-01-01",
        "Test",
        "-",
        "failed",
        "0.85",
        "breach",
    ]
    assert text[3].strip() == "model.params.C: 1.0 -> 0.5"
    assert text[4].split()[:7] == [first[:7], "2026-01-01", "Test", "v1.0.0", "passed", "0.9", "-"]
    assert text[5].strip() == "first applied state (1 params)"

    bad = mlopsctl(root, "history", "chrun")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: unknown use case 'chrun' (did you mean 'churn'?)")
    for name in ("../churn", "churn\n", "*"):  # a name is never a path or a pattern
        bad = mlopsctl(root, "history", name)
        assert bad.returncode == 1 and bad.stderr.startswith("error: unknown use case"), name


def _tables(tokens: list[Any]) -> list[list[list[str]]]:
    """Every table of a parsed document, as rows of cell texts (header first)."""
    tables: list[list[list[str]]] = []
    row: list[str] | None = None
    for i, tok in enumerate(tokens):
        if tok.type == "table_open":
            tables.append([])
        elif tok.type == "tr_open":
            row = []
        elif tok.type in ("th_open", "td_open"):
            assert row is not None
            row.append(tokens[i + 1].content)
        elif tok.type == "tr_close":
            assert row is not None
            tables[-1].append(row)
    return tables


def _parse(md: str) -> list[Any]:
    tokens: list[Any] = MarkdownIt("commonmark", {"html": True}).enable("table").parse(md)
    return tokens


def test_pr_comment_without_apply_on_the_branch(tmp_path: Path) -> None:
    """Never applied: the comment says there is nothing to compare, in one line, and still
    draws the DAG; with --base REV the use case is new on the branch."""
    root = make_project(tmp_path, "breast-cancer", remote=False)
    md = mlopsctl(root, "plan", "--format", "markdown", check=True, env=NO_BASE_ENV).stdout
    assert md.splitlines()[0] == "<!-- mlopsctl:plan -->"
    assert "No metrics comparison: no base branch (pass `--base REV`" in md
    fences = [t for t in _parse(md) if t.type == "fence"]
    assert [f.info for f in fences] == ["mermaid"]
    assert "  class n0,n1,n2,n3,n4,n5 run" in fences[0].content
    env = {**NO_BASE_ENV, "GITHUB_BASE_REF": "main"}  # origin/main was never fetched
    md = mlopsctl(root, "plan", "--format", "markdown", check=True, env=env).stdout
    assert "No metrics comparison: the base `origin/main` is not in this clone" in md
    md = mlopsctl(root, "plan", "--format", "markdown", "--base", "HEAD", check=True).stdout
    assert "#### breast-cancer\n\nNot applied yet, neither on the base nor on this branch." in md
    bad = mlopsctl(root, "plan", "--format", "markdown", "--base", "nope")
    assert (bad.returncode, bad.stderr) == (1, "error: unknown revision 'nope'\n")


# --- real applies (slow) -------------------------------------------------------------------------


def _second_apply(root: Path) -> None:
    edit(root / UC, "C: 1.0", "C: 0.5")
    mlopsctl(root, "apply", check=True)


@pytest.fixture(scope="module")
def two_applies_template(
    applied_template: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """What the `applied` fixture gives (main: the apply, then a commit pointing the DVC remote
    at the copy), and branch `feature` checked out with a second apply (C 0.5) on top. Built
    once: the tests below only read it, each from its own copy (`_two_applies`)."""
    base = tmp_path_factory.mktemp("two-applies")
    root = copy_project(applied_template("breast-cancer"), base)
    git(root, "checkout", "-q", "-b", "feature")
    _second_apply(root)
    return base


def _two_applies(template: Path, tmp: Path) -> Path:
    """A private copy of *template*: repo, DVC cache and remote (re-pointed in the untracked
    .dvc/config.local, so that the copy's git history is the template's)."""
    shutil.copytree(template / "repo", tmp / "repo", symlinks=True)
    shutil.copytree(template / "remote", tmp / "remote")
    local = f"['remote \"storage\"']\n    url = {tmp / 'remote'}\n"
    (tmp / "repo/.dvc/config.local").write_text(local, "utf-8")
    assert git(tmp / "repo", "status", "--porcelain") == ""
    return tmp / "repo"


@pytest.mark.slow
def test_two_applies_diff_and_history(two_applies_template: Path, tmp_path: Path) -> None:
    root = _two_applies(two_applies_template, tmp_path)  # both applies done, HEAD the second
    first = git(root, "rev-parse", "HEAD~2").strip()  # the first apply (then the remote commit)
    assert git(root, "log", "-1", "--format=%s", first).startswith("mlopsctl apply:")
    second = git(root, "rev-parse", "HEAD").strip()
    assert git(root, "log", "-1", "--format=%s", second).startswith("mlopsctl apply:")
    for tag, commit in (("v1.0.0", first), ("v1.1.0", second)):  # each apply tagged its version
        assert git(root, "rev-parse", f"breast-cancer@{tag}^{{commit}}").strip() == commit
    metrics = [
        json.loads(git(root, "show", f"{rev}:reports/breast-cancer/metrics.json"))
        for rev in (first, second)
    ]

    out = json.loads(mlopsctl(root, "diff", "HEAD~1", "--format", "json", check=True).stdout)
    assert out["old"]["commit"] == git(root, "rev-parse", "HEAD~1").strip()
    (u,) = out["usecases"]
    assert u["status"] == "changed"
    assert u["params"] == [{"path": "model.params.C", "old": 1.0, "new": 0.5}]
    shown = {m["name"]: m for m in u["metrics"]}
    assert shown, "a new C changes the scores"
    for name, m in shown.items():
        assert (m["old"], m["new"]) == (metrics[0][name], metrics[1][name])
        assert m["delta"] == pytest.approx(metrics[1][name] - metrics[0][name])
    for goal in ("roc_auc", "f1"):  # min bounds: higher is better
        if goal in shown:
            assert shown[goal]["better"] is (shown[goal]["delta"] > 0)
    text = mlopsctl(root, "diff", "HEAD~1", check=True).stdout
    assert "  model.params.C  1.0     0.5" in text
    arrow = r"^  (roc_auc|f1) .* [-+][0-9.e-]+ \([-+][0-9.]+%\) [▲▼] (better|worse)$"
    assert re.search(arrow, text, re.M), text

    hist = json.loads(mlopsctl(root, "history", "breast-cancer", "--json", check=True).stdout)
    rows = hist["rows"]
    assert [r["commit"] for r in rows] == [second, first]
    assert [r["version"] for r in rows] == ["v1.1.0", "v1.0.0"]
    for row, m in zip(rows, [metrics[1], metrics[0]], strict=True):
        assert row["metrics"] == m
        assert row["gate"]["passed"] is True
        assert [c["metric"] for c in row["gate"]["checks"]] == ["f1", "roc_auc"]
        assert row["apply"] is True
        assert row["trailers"]["gate"].startswith("passed (")
        assert list(row["data"]) == ["artifacts/breast-cancer/snapshot.parquet"]
        assert row["monitoring"] is None and row["problems"] == []
    assert rows[0]["params_changed"] == [{"path": "model.params.C", "old": 1.0, "new": 0.5}]
    assert {p["path"] for p in rows[1]["params_changed"]} >= {"model.params.C", "goal.target"}
    assert rows[0]["data"] == rows[1]["data"]  # same data, new params
    text = mlopsctl(root, "history", "breast-cancer", check=True).stdout.splitlines()
    assert [line.split()[3:5] for line in (text[2], text[4])] == [
        ["v1.1.0", "passed"],
        ["v1.0.0", "passed"],
    ]


@pytest.mark.slow
def test_pr_comment_for_a_branch_that_applied(two_applies_template: Path, tmp_path: Path) -> None:
    root = _two_applies(two_applies_template, tmp_path)  # branch `feature` applied C 0.5
    edit(root / UC, "f1: {min: 0.90}", "f1: {min: 0.85}")  # not applied: the gate will run
    git(root, "update-ref", "refs/remotes/origin/main", "main")  # as actions/checkout fetches
    env = {**ENV, "GITHUB_BASE_REF": "main"}
    md = mlopsctl(root, "plan", "--format", "markdown", check=True, env=env).stdout
    assert md.splitlines()[0] == "<!-- mlopsctl:plan -->"
    tokens = _parse(md)
    assert tokens[0].type == "html_block" and tokens[0].content == "<!-- mlopsctl:plan -->\n"

    plan_table, params, metrics = _tables(tokens)
    assert plan_table[0] == ["use case", "stage", "action", "why"]
    assert plan_table[1][:3] == ["breast-cancer", "`gate`", "~ run"]
    assert params == [["param", "origin/main", "branch"], ["`model.params.C`", "1.0", "0.5"]]
    assert metrics[0] == ["metric", "origin/main", "branch", "change"]
    base = json.loads(git(root, "show", "main:reports/breast-cancer/metrics.json"))
    branch = json.loads((root / "reports/breast-cancer/metrics.json").read_text())
    rows = {r[0]: r for r in metrics[1:]}
    assert set(rows) == set(base)
    assert [r[0] for r in metrics[1:3]] == ["f1", "roc_auc"]  # the goal metrics first
    for name, (_n, old, new, change) in rows.items():
        assert (float(old), float(new)) == pytest.approx((base[name], branch[name]), abs=1e-4)
        delta = branch[name] - base[name]
        if abs(delta) > 1e-9:
            assert ("▲" if delta > 0 else "▼") in change
            if name in ("f1", "roc_auc"):
                assert change.endswith("better" if delta > 0 else "worse")
    assert "gate: passed" in md

    (fence,) = [t for t in tokens if t.type == "fence"]
    assert fence.info == "mermaid"
    body = fence.content.splitlines()
    assert body[0] == "flowchart TD"
    labels = dict(re.findall(r'^    (n\d+)\["([^"]+)"\]$', fence.content, re.M))
    edges = {
        (f"breast-cancer_{labels[a]}", f"breast-cancer_{labels[b]}")
        for a, b in re.findall(r"^  (n\d+) --> (n\d+)$", fence.content, re.M)
    }
    dot = dvc(root, "dag", "--dot").stdout
    assert edges == set(re.findall(r'"([^"]+)" -> "([^"]+)";', dot))  # every edge, as DVC's
    for name in ("run", "restore", "uptodate", "remove", "blocked"):
        assert any(line.startswith(f"  classDef {name} fill:") for line in body)
    node = {label: n for n, label in labels.items()}
    assert f"  class {node['gate']} run" in body
    ups = ",".join(node[s] for s in ("ingest", "validate", "split", "train", "evaluate"))
    assert f"  class {ups} uptodate" in body
