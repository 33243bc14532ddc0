"""Monitoring end to end: the monitor stage, on_breach, retraining and `mlopsctl monitor`, in a
real git + DVC repository of the breast-cancer example (a bundled scikit-learn data set)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import dvc, dvc_stale, git, make_project, mlopsctl, plan_json, to_run
from .test_deploy import rest_project

pytestmark = pytest.mark.slow

NAME = "breast-cancer"
USECASE = f"usecases/{NAME}.yaml"
REPORTS = f"reports/{NAME}/monitoring"


def batch(drifted: bool, rows: int = 200) -> Any:
    """Rows of the training data set; drifted: two features shifted far beyond their range."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.sample(rows, random_state=7)
    if drifted:
        frame["mean radius"] = frame["mean radius"] * 1.8
        frame["worst area"] = frame["worst area"] * 2.5
    return frame


def add_monitoring(root: Path, on_breach: str, threshold: float = 0.2, extra: str = "") -> None:
    path = root / USECASE
    text = path.read_text("utf-8")
    text += (
        "\nmonitoring:\n"
        "  current: {format: csv, path: data/current.csv}\n"
        f"  drift: {{method: psi, threshold: {threshold}}}\n"
        "  data_quality: {max_missing: 0.1}\n"
        f"  on_breach: {on_breach}\n{extra}"
    )
    path.write_text(text, "utf-8")


def commit_batch(root: Path, drifted: bool, message: str = "current batch") -> None:
    (root / "data").mkdir(exist_ok=True)
    batch(drifted).to_csv(root / "data" / "current.csv", index=False)
    dvc(root, "add", "data/current.csv")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def monitored(applied: Callable[[str], Path], on_breach: str, drifted: bool) -> Path:
    root = applied(NAME)
    add_monitoring(root, on_breach)
    commit_batch(root, drifted)
    return root


def test_undrifted_batch_passes_and_reports_land(applied: Callable[[str], Path]) -> None:
    root = monitored(applied, "alert", drifted=False)
    assert (root / f"artifacts/{NAME}/reference_profile.json").is_file()
    plan = plan_json(root)
    assert to_run(plan) == {f"{NAME}/monitor": "run"}
    proc = mlopsctl(root, "apply")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "breach" not in proc.stdout
    results = json.loads((root / REPORTS / "monitoring.json").read_text("utf-8"))
    assert results[0]["usecase"] == NAME and results[0]["breach"] is False
    assert results[0]["rows"] == 200
    html = (root / REPORTS / "report.html").read_text("utf-8")
    assert html.startswith("<!DOCTYPE html>") or "<html" in html
    assert (root / REPORTS / "report.md").is_file()
    # committed to git, not DVC-cached
    tracked = git(root, "ls-files", REPORTS).split()
    assert f"{REPORTS}/monitoring.json" in tracked and f"{REPORTS}/breach.json" in tracked
    assert git(root, "status", "--porcelain").strip() == ""
    assert dvc_stale(root) == set()  # DVC agrees: dvc.yaml's monitor stage is recorded
    check = mlopsctl(root, "monitor")
    assert check.returncode == 0, check.stdout + check.stderr
    assert to_run(plan_json(root)) == {}
    status = json.loads(mlopsctl(root, "status", "--json", check=True).stdout)
    assert _status_of(status)["monitoring"] == "ok"


def test_drifted_batch_alert_passes_and_prints_the_breach(applied: Callable[[str], Path]) -> None:
    root = monitored(applied, "alert", drifted=True)
    proc = mlopsctl(root, "apply")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "monitoring breach: drift: mean radius PSI" in proc.stdout
    record = json.loads((root / REPORTS / "breach.json").read_text("utf-8"))
    assert record["breach"] is True and record["on_breach"] == "alert"
    # alert never retrains
    assert to_run(plan_json(root)) == {}
    check = mlopsctl(root, "monitor")
    assert check.returncode == 3, check.stdout + check.stderr
    assert "mean radius" in check.stdout
    status = json.loads(mlopsctl(root, "status", "--json", check=True).stdout)
    assert _status_of(status)["monitoring"] == "breach"


def test_drifted_batch_with_fail_fails_apply_and_keeps_the_report(
    applied: Callable[[str], Path],
) -> None:
    root = monitored(applied, "fail", drifted=True)
    proc = mlopsctl(root, "apply")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "monitoring breach" in out and "Traceback" not in out
    results = json.loads((root / REPORTS / "monitoring.json").read_text("utf-8"))
    assert results[0]["breach"] is True


def test_retrain_plans_train_with_the_breach_then_is_clean(
    applied: Callable[[str], Path],
) -> None:
    root = monitored(applied, "retrain", drifted=True)
    mlopsctl(root, "apply", check=True)
    plan = plan_json(root)
    train = next(s for s in plan["stages"] if s["id"] == f"{NAME}/train")
    assert train["action"] == "run"
    reasons = [r for r in train["reasons"] if r["kind"] == "monitoring-breach"]
    assert reasons and reasons[0]["message"].startswith("drift: mean radius PSI")
    assert {f"{NAME}/train", f"{NAME}/evaluate", f"{NAME}/gate"} <= set(to_run(plan))
    text = mlopsctl(root, "plan", check=True).stdout
    assert "drift: mean radius PSI" in text
    proc = mlopsctl(root, "apply")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    training = json.loads((root / f"reports/{NAME}/training.json").read_text("utf-8"))
    assert (
        training["monitoring_breach"]
        == json.loads((root / REPORTS / "breach.json").read_text("utf-8"))["id"]
    )
    assert to_run(plan_json(root)) == {}


def test_threshold_change_plans_monitor_alone(applied: Callable[[str], Path]) -> None:
    root = monitored(applied, "alert", drifted=False)
    mlopsctl(root, "apply", check=True)
    path = root / USECASE
    path.write_text(path.read_text("utf-8").replace("threshold: 0.2}", "threshold: 0.3}"), "utf-8")
    plan = plan_json(root)
    assert to_run(plan) == {f"{NAME}/monitor": "run"}
    monitor = next(s for s in plan["stages"] if s["id"] == f"{NAME}/monitor")
    assert [r["path"] for r in monitor["reasons"]] == ["monitoring.drift.threshold"]


def test_monitor_data_with_problems_exits_3_without_traceback(
    applied: Callable[[str], Path],
) -> None:
    root = monitored(applied, "alert", drifted=False)
    frame = batch(drifted=False).drop(columns=["mean texture"])
    frame.iloc[:60, frame.columns.get_loc("mean smoothness")] = None  # 30 % missing
    frame["region"] = "north"  # a column the model never saw
    bad = root / "bad.csv"
    frame.to_csv(bad, index=False)
    lock = (root / "dvc.lock").read_text("utf-8")
    proc = mlopsctl(root, "monitor", "--data", "bad.csv", "--format", "json")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    results = json.loads(proc.stdout)
    problems = " | ".join(results[0]["problems"])
    assert "missing column: mean texture" in problems
    assert "new column: region" in problems
    assert "too many missing values: mean smoothness" in problems
    _validate(results)
    # on demand: neither dvc.lock nor git change
    assert (root / "dvc.lock").read_text("utf-8") == lock
    assert git(root, "status", "--porcelain").strip() == "?? bad.csv"
    text = mlopsctl(root, "monitor", "--data", "bad.csv")
    assert text.returncode == 3 and "missing column: mean texture" in text.stdout


def test_retrain_with_current_trains_on_the_batch_too(applied: Callable[[str], Path]) -> None:
    root = applied(NAME)
    before = json.loads((root / f"reports/{NAME}/training.json").read_text("utf-8"))
    add_monitoring(root, "retrain", extra="  retrain_with_current: true\n")
    commit_batch(root, drifted=False)
    plan = plan_json(root)
    train = next(s for s in plan["stages"] if s["id"] == f"{NAME}/train")
    assert train["action"] == "run"
    assert "data/current.csv" in {r["path"] for r in train["reasons"]}
    mlopsctl(root, "apply", check=True)
    training = json.loads((root / f"reports/{NAME}/training.json").read_text("utf-8"))
    assert training["n_current"] == 200
    assert training["n_train"] == before["n_train"] + 200
    # a new batch re-trains (the batch is a dependency of train now)
    commit_batch(root, drifted=True, message="next batch")
    assert f"{NAME}/train" in to_run(plan_json(root))


def test_monitor_reports_an_unseen_category_missing_column_and_missing_values(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """The house-prices example has categorical features: a batch with a category the model
    never saw, a missing column and 30 % missing values is reported problem by problem."""
    import pandas as pd

    # the example with a fast model (Ridge, alpha 1.0), already applied: apply adds the monitor
    root = rest_project(tmp_path_factory, tmp_path)
    (root / "usecases/house-prices.yaml").write_text(
        (root / "usecases/house-prices.yaml").read_text("utf-8")
        + "\nmonitoring:\n  current: {format: csv, path: data/houses.csv}\n"
        "  data_quality: {max_missing: 0.1}\n",
        "utf-8",
    )
    git(root, "commit", "-q", "-am", "monitor the training data itself")
    mlopsctl(root, "apply", check=True)
    assert mlopsctl(root, "monitor", "-u", "house-prices").returncode == 0
    frame = pd.read_csv(root / "data/houses.csv").head(300).drop(columns=["rooms"])
    frame.loc[:9, "neighbourhood"] = "atlantis"
    frame.loc[100:189, "area_m2"] = None  # 30 %
    frame.to_csv(root / "bad.csv", index=False)
    proc = mlopsctl(root, "monitor", "-u", "house-prices", "--data", "bad.csv", "--format", "json")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    results = json.loads(proc.stdout)
    _validate(results)
    problems = results[0]["problems"]
    assert "missing column: rooms" in problems
    assert any(p.startswith("unseen category: neighbourhood: 'atlantis'") for p in problems)
    assert any(p.startswith("too many missing values: area_m2: 30.0%") for p in problems)


def test_monitor_before_any_apply_is_one_clear_error(tmp_path: Path) -> None:
    root = make_project(tmp_path, NAME, remote=False)
    add_monitoring(root, "alert")
    (root / "data").mkdir()
    batch(drifted=False).to_csv(root / "data/current.csv", index=False)
    proc = mlopsctl(root, "monitor")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "reference_profile.json does not exist" in proc.stderr
    missing = mlopsctl(root, "monitor", "--data", "nope.csv")
    assert missing.returncode == 1 and "nope.csv does not exist" in missing.stderr


def _status_of(status: Any) -> dict[str, Any]:
    return next(u for u in status if u["usecase"] == NAME)


def _validate(results: Any) -> None:
    import jsonschema

    schema = json.loads(
        (Path(__file__).resolve().parents[2] / "mlopsctl/schemas/monitor.schema.json").read_text(
            "utf-8"
        )
    )
    jsonschema.validate(results, schema)
