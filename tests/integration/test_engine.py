"""The engine against real git and real DVC: plan, apply, invalidation, run-cache, reruns."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import (
    ENV,
    FirstApply,
    dvc,
    dvc_stale,
    edit,
    git,
    make_project,
    mlopsctl,
    plan_json,
    run,
    stale_ids,
    to_run,
)

pytestmark = pytest.mark.slow
UC = "usecases/breast-cancer.yaml"
STAGES = ["ingest", "validate", "split", "train", "evaluate", "gate"]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("example", ["breast-cancer", "house-prices"])
def test_plan_apply_cycle_on_each_example(
    applied: Callable[[str], Path], first_applies: dict[str, FirstApply], example: str
) -> None:
    # the session's template of the example is this cycle's first half: a fresh project
    # (mlopsctl init --example, committed), planned, then applied; its copy the second half
    root = applied(example)
    first = first_applies[example]
    p = first.plan
    assert p.returncode == 2, p.stdout + p.stderr
    assert "new use case" in p.stdout

    a = first.apply
    assert a.returncode == 0, a.stdout + a.stderr
    assert first.commits_after == first.commits_before + 1
    message = first.message
    assert message.startswith(f"mlopsctl apply: {example}")
    assert "Mlopsctl-Plan: " in message and f"Mlopsctl-Gate: {example} passed" in message
    assert f"Mlopsctl-Data: {example} artifacts/{example}/snapshot.parquet md5:" in message

    p = mlopsctl(root, "plan", "--detailed-exitcode")
    assert p.returncode == 0, p.stdout
    assert "No changes" in p.stdout
    assert "up to date" in dvc(root, "status").stdout.lower()
    repro = dvc(root, "repro")
    assert "didn't change, skipping" in repro.stdout
    assert "Running stage" not in repro.stdout
    assert git(root, "status", "--porcelain") == ""
    # metrics and params are visible through DVC's own commands
    shown = json.loads(dvc(root, "metrics", "show", "--json").stdout)
    assert shown  # non-empty
    assert dvc(root, "dag").returncode == 0


def test_param_change_plans_train_and_downstream(applied: Callable[[str], Path]) -> None:
    root = applied("breast-cancer")
    edit(root / UC, "C: 1.0", "C: 0.5")
    plan = plan_json(root)
    assert to_run(plan) == {
        "breast-cancer/train": "run",
        "breast-cancer/evaluate": "run",
        "breast-cancer/gate": "run",
    }
    train = next(s for s in plan["stages"] if s["id"] == "breast-cancer/train")
    assert train["reasons"] == [
        {
            "kind": "param",
            "message": "model.params.C: 1.0 -> 0.5",
            "path": "model.params.C",
            "old": 1.0,
            "new": 0.5,
        }
    ]
    evaluate = next(s for s in plan["stages"] if s["id"] == "breast-cancer/evaluate")
    assert [r["kind"] for r in evaluate["reasons"]] == ["upstream"]
    text = mlopsctl(root, "plan").stdout
    assert "~ train      model.params.C: 1.0 -> 0.5" in text
    assert "~ evaluate   upstream train changed" in text
    assert "Plan: 3 to run, 3 up to date, 0 to remove." in text


def test_goal_metric_change_reruns_gate_only_and_description_nothing(
    applied: Callable[[str], Path],
) -> None:
    root = applied("breast-cancer")
    edit(root / UC, "min: 0.95", "min: 0.9")
    assert to_run(plan_json(root)) == {"breast-cancer/gate": "run"}
    git(root, "checkout", "--", UC)
    edit(root / UC, "description: Classify breast tumours", "description: Sort breast tumours")
    assert to_run(plan_json(root)) == {}


def test_data_row_change_plans_ingest_with_both_hash_prefixes(
    applied: Callable[[str], Path],
) -> None:
    root = applied("house-prices")
    csv = root / "data" / "houses.csv"
    old = md5(csv)
    lines = csv.read_text().splitlines(keepends=True)
    fields = lines[5].split(",")
    fields[1] = str(float(fields[1]) + 1.0)
    lines[5] = ",".join(fields)
    csv.write_text("".join(lines))
    new = md5(csv)
    plan = plan_json(root)
    assert set(to_run(plan)) == {f"house-prices/{s}" for s in STAGES}
    ingest = plan["stages"][0]
    assert ingest["id"] == "house-prices/ingest"
    assert ingest["reasons"][0]["message"] == f"data/houses.csv changed ({old[:7]} -> {new[:7]})"
    assert {
        s["id"] for s in plan["stages"] if s["reasons"] and s["reasons"][0]["kind"] == "upstream"
    } == {f"house-prices/{s}" for s in STAGES[1:]}


def test_a_same_size_data_edit_with_its_mtime_put_back_is_planned(
    applied: Callable[[str], Path],
) -> None:
    """The stat-keyed hash cache must not lie: same inode, same size, the old mtime restored
    (as `touch -d` or an archive tool leaves it), other bytes: plan still sees the change."""
    root = applied("house-prices")
    assert mlopsctl(root, "plan", "--detailed-exitcode").returncode == 0  # hashes cached
    csv = root / "data" / "houses.csv"
    before = os.stat(csv)
    data = bytearray(csv.read_bytes())
    at = data.index(b"\n", len(data) // 2) + 1  # a digit of a row in the middle
    while not chr(data[at]).isdigit():
        at += 1
    data[at] = ord("1") if data[at] != ord("1") else ord("2")
    time.sleep(0.05)  # kernels with coarse (per-tick) timestamps: let ctime move on
    with csv.open("r+b") as fh:  # in place: the inode stays
        fh.write(data)
    os.utime(csv, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(csv)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    assert to_run(plan_json(root))["house-prices/ingest"] == "run"


def test_reverting_a_param_restores_from_cache_without_training(
    applied: Callable[[str], Path],
) -> None:
    root = applied("breast-cancer")
    model = root / "artifacts/breast-cancer/model.skops"
    original = md5(model)
    edit(root / UC, "C: 1.0", "C: 0.5")
    first = json.loads(mlopsctl(root, "apply", "--json", check=True).stdout)
    assert {s["id"]: s["status"] for s in first["stages"]}["breast-cancer/train"] == "ran"
    assert md5(model) != original
    # DVC's own views of the applied change work on the generated pipeline
    params = json.loads(dvc(root, "params", "diff", "HEAD~1", "--json").stdout)
    assert params[UC]["model.params.C"] == {"old": 1.0, "new": 0.5, "diff": -0.5}
    metrics = json.loads(dvc(root, "metrics", "diff", "HEAD~1", "--json").stdout)
    assert "roc_auc" in metrics["reports/breast-cancer/metrics.json"]

    edit(root / UC, "C: 0.5", "C: 1.0")
    plan = plan_json(root)
    assert to_run(plan)["breast-cancer/train"] == "restore"
    back = json.loads(mlopsctl(root, "apply", "--json", check=True).stdout)
    statuses = {s["id"]: s["status"] for s in back["stages"]}
    assert statuses["breast-cancer/train"] == "restored"
    assert "ran" not in statuses.values(), statuses  # nothing was recomputed
    assert md5(model) == original
    assert mlopsctl(root, "plan", "--detailed-exitcode").returncode == 0
    assert dvc_stale(root) == set()


def _write_dvc_yaml(root: Path) -> None:
    """What apply would write for the current specs (so DVC sees the same pipeline)."""
    code = (
        "import sys; from pathlib import Path; from mlopsctl.plan.api import plan_directory;"
        "from mlopsctl.execute.apply import write_dvc_yaml;"
        "p = plan_directory(Path(sys.argv[1])); write_dvc_yaml(p.project.root, p.graph)"
    )
    run([sys.executable, "-c", code, str(root)], root, check=True)


SCENARIOS: dict[str, Callable[[Path], None]] = {
    "nothing": lambda r: None,
    "model-param": lambda r: edit(r / UC, "C: 1.0", "C: 2.0"),
    "goal-metric": lambda r: edit(r / UC, "min: 0.95", "min: 0.96"),
    "description": lambda r: edit(r / UC, "description: Classify", "description: Sort"),
    "data-checks": lambda r: edit(r / UC, "min_rows: 400", "min_rows: 300"),
    "split-seed": lambda r: edit(r / UC, "seed: 42", "seed: 7"),
    "preprocessing": lambda r: edit(r / UC, "numeric: standard", "numeric: minmax"),
    "model-out-deleted": lambda r: (r / "artifacts/breast-cancer/model.skops").unlink(),
    "metrics-edited": lambda r: (r / "reports/breast-cancer/metrics.json").write_text("{}\n"),
    "snapshot-deleted": lambda r: (r / "artifacts/breast-cancer/snapshot.parquet").unlink(),
    "test-set-modified": lambda r: (r / "artifacts/breast-cancer/test.parquet").write_bytes(b"x"),
    "param-and-metric": lambda r: (
        edit(r / UC, "C: 1.0", "C: 3.0"),
        edit(r / UC, "min: 0.95", "min: 0.9"),
    ),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_plan_stale_set_equals_dvc_status(applied: Callable[[str], Path], scenario: str) -> None:
    root = applied("breast-cancer")
    SCENARIOS[scenario](root)
    _write_dvc_yaml(root)
    plan = plan_json(root)
    assert stale_ids(plan) == dvc_stale(root), (scenario, json.dumps(plan["stages"], indent=1))


def test_fresh_clone_pull_plans_nothing_and_forced_rerun_is_byte_identical(
    applied: Callable[[str], Path], tmp_path: Path
) -> None:
    root = applied("house-prices")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    dvc(clone, "pull")
    p = mlopsctl(clone, "plan", "--detailed-exitcode")
    assert p.returncode == 0, p.stdout

    files = [
        "artifacts/house-prices/model.skops",
        "artifacts/house-prices/snapshot.parquet",
        "reports/house-prices/metrics.json",
        "reports/house-prices/training.json",
        "reports/house-prices/plots/residuals.png",
    ]
    before = {f: md5(clone / f) for f in files}
    git(clone, "config", "user.name", "Test")
    git(clone, "config", "user.email", "test@example.com")
    forced = json.loads(mlopsctl(clone, "apply", "--force", "--json", check=True).stdout)
    assert {s["status"] for s in forced["stages"]} == {"ran"}
    assert {f: md5(clone / f) for f in files} == before
    assert git(clone, "status", "--porcelain") == ""


def test_failed_gate_stops_its_use_case_and_others_go_on(tmp_path: Path) -> None:
    root = make_project(tmp_path, "breast-cancer")
    uc = (root / UC).read_text()
    bad = uc.replace("name: breast-cancer", "name: unreachable").replace("min: 0.95", "min: 0.9999")
    (root / "usecases/unreachable.yaml").write_text(bad)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "add a use case whose goal cannot be met")
    head = git(root, "rev-parse", "HEAD").strip()

    a = mlopsctl(root, "apply", "--jobs", "2", "--json")
    assert a.returncode == 1
    result = json.loads(a.stdout)
    status = {s["id"]: s for s in result["stages"]}
    assert status["unreachable/gate"]["status"] == "failed"
    assert "roc_auc" in status["unreachable/gate"]["message"]
    assert status["breast-cancer/gate"]["status"] == "ran"
    # the two use cases ran at the same time: some stage of one overlapped some stage of the
    # other (which pair depends on the machine's load; their ingests start together)
    ran = [s for s in result["stages"] if s["status"] in ("ran", "failed") and s["started"]]
    mine = [s for s in ran if s["id"].startswith("breast-cancer/")]
    other = [s for s in ran if s["id"].startswith("unreachable/")]
    assert any(
        a["started"] < b["started"] + b["seconds"] and b["started"] < a["started"] + a["seconds"]
        for a in mine
        for b in other
    ), [(s["id"], s["started"], s["seconds"]) for s in ran]
    # the good use case is recorded and committed; the failed gate is not recorded in dvc.lock
    assert git(root, "rev-parse", "HEAD").strip() != head
    lock = (root / "dvc.lock").read_text()
    assert "breast-cancer_gate:" in lock and "unreachable_gate:" not in lock
    assert "unreachable_evaluate:" in lock
    verdict = json.loads((root / "reports/unreachable/gate.json").read_text())
    assert verdict["passed"] is False  # the verdict is always written
    message = git(root, "log", "-1", "--format=%B")
    assert "Mlopsctl-Gate: unreachable failed" in message
    assert "Mlopsctl-Gate: breast-cancer passed" in message
    # the text summary names the failed gate
    text = mlopsctl(root, "apply")
    assert text.returncode == 1
    assert "unreachable/gate" in text.stdout and "roc_auc" in text.stdout


def test_second_apply_fails_naming_the_holder_and_dead_lock_is_taken_over(
    applied: Callable[[str], Path],
) -> None:
    root = applied("breast-cancer")
    edit(root / UC, "C: 1.0", "C: 0.25")
    git(root, "commit", "-q", "-am", "change C")
    first = subprocess.Popen(
        [sys.executable, "-m", "mlopsctl", "apply"],
        cwd=root,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = root / ".mlopsctl/apply.lock"
    deadline = time.time() + 60
    while not lock.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert lock.exists()
    second = mlopsctl(root, "apply")
    assert second.returncode == 1
    assert f"another apply holds the lock (pid {first.pid} on" in second.stderr
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err

    # a holder killed mid-apply leaves its lock behind; the next apply takes it over
    edit(root / UC, "C: 0.25", "C: 0.3")
    git(root, "commit", "-q", "-am", "change C again")
    victim = subprocess.Popen(
        [sys.executable, "-m", "mlopsctl", "apply"],
        cwd=root,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while not lock.exists() and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    assert lock.exists()
    after = mlopsctl(root, "apply")
    assert after.returncode == 0, after.stdout + after.stderr
    assert "taking over the lock" in after.stderr
    assert mlopsctl(root, "plan", "--detailed-exitcode").returncode == 0


def test_saved_plan_applies_exactly_and_is_refused_when_stale(
    applied: Callable[[str], Path],
) -> None:
    root = applied("house-prices")
    edit(root / "usecases/house-prices.yaml", "r2: {min: 0.6}", "r2: {min: 0.5}")
    p = mlopsctl(root, "plan", "-o", "tfplan.json", check=True)
    assert "Saved the plan to tfplan.json" in p.stdout
    csv = root / "data/houses.csv"
    csv.write_text(
        csv.read_text() + csv.read_text().splitlines()[-1].replace("1500", "9999", 1) + "\n"
    )
    stale = mlopsctl(root, "apply", "tfplan.json")
    assert stale.returncode == 1
    assert "plan is stale: data/houses.csv changed since the plan" in stale.stderr
    dvc(root, "checkout", "--force", "data/houses.csv.dvc")
    ok = json.loads(mlopsctl(root, "apply", "tfplan.json", "--json", check=True).stdout)
    assert [s["id"] for s in ok["stages"] if s["status"] == "ran"] == ["house-prices/gate"]


def test_environment_upgrade_is_a_reason(applied: Callable[[str], Path]) -> None:
    root = applied("breast-cancer")
    lock = root / "dvc.lock"
    text = lock.read_text()
    import sklearn

    assert f"scikit-learn={sklearn.__version__}" in text
    lock.write_text(text.replace(f"scikit-learn={sklearn.__version__}", "scikit-learn=0.24.2"))
    plan = plan_json(root)
    train = next(s for s in plan["stages"] if s["id"] == "breast-cancer/train")
    assert (
        train["reasons"][0]["message"]
        == f"environment: scikit-learn 0.24.2 -> {sklearn.__version__}"
    )
