"""The deploy stage end to end: real git, real DVC, real apply of the regression example."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .conftest import copy_project, dvc_stale, git, make_project, mlopsctl, plan_json, to_run

pytestmark = pytest.mark.slow

USECASE = "usecases/house-prices.yaml"
BUNDLE = "artifacts/house-prices/deploy"


def set_model(root: Path, alpha: float, gate: str = "rmse: {max: 500.0}") -> None:
    """A fast model (Ridge, no tuning) and a gate it passes, in the example's use case."""
    path = root / USECASE
    text = path.read_text("utf-8")
    text = re.sub(r"\nmodel:\n(  .*\n|\s*#.*\n)*", "\n" + _model(alpha) + "\n", text, count=1)
    text = re.sub(r"  metrics:\n(    .*\n)+", f"  metrics:\n    {gate}\n", text, count=1)
    text = text.replace("  primary_metric: r2\n", "")
    path.write_text(text, "utf-8")


def _model(alpha: float) -> str:
    return (
        "model:\n"
        "  estimator: sklearn.linear_model.Ridge\n"
        f"  params: {{alpha: {alpha}}}\n"
        "  preprocessing: {numeric: standard, categorical: onehot, impute: median}\n"
    )


def set_deploy(root: Path, block: str) -> None:
    path = root / USECASE
    text = path.read_text("utf-8")
    head = text[: text.index("\ndeploy:")]
    path.write_text(head + "\ndeploy:\n" + block, "utf-8")


BATCH = (
    "  target: batch\n"
    "  batch:\n"
    "    input: {format: csv, path: data/houses.csv}\n"
    "    output: artifacts/house-prices/predictions.csv\n"
)


def regression_project(tmp_path: Path, deploy: str = BATCH, alpha: float = 1.0) -> Path:
    root = make_project(tmp_path, "house-prices", remote=False)
    set_model(root, alpha)
    set_deploy(root, deploy)
    git(root, "commit", "-q", "-am", "fast model, deploy target")
    return root


REST_18080 = "  target: rest\n  rest: {host: 127.0.0.1, port: 18080}\n"


_rest_templates: dict[Path, Path] = {}


def rest_template(factory: pytest.TempPathFactory) -> Path:
    """regression_project(deploy=REST_18080), applied once per session (per xdist worker).

    Never modified and never served: tests take a private copy (`rest_project`)."""
    key = factory.getbasetemp()
    if key not in _rest_templates:
        root = regression_project(factory.mktemp("tpl-fast-house-prices"), deploy=REST_18080)
        mlopsctl(root, "apply", check=True)
        _rest_templates[key] = root
    return _rest_templates[key]


def rest_project(factory: pytest.TempPathFactory, dest: Path) -> Path:
    """A private copy of `rest_template` in dest: as if the test had built and applied it."""
    return copy_project(rest_template(factory).parent, dest)


def manifest(root: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((root / BUNDLE / "manifest.json").read_text("utf-8"))
    return result


def test_batch_target_scores_every_row_and_an_output_change_runs_deploy_alone(
    tmp_path: Path,
) -> None:
    import pandas as pd

    root = regression_project(tmp_path)
    plan = plan_json(root)
    deploy = next(s for s in plan["stages"] if s["id"] == "house-prices/deploy")
    assert deploy["action"] == "run"
    mlopsctl(root, "apply", check=True)

    rows = pd.read_csv(root / "data/houses.csv")
    scored = pd.read_csv(root / "artifacts/house-prices/predictions.csv")
    assert len(scored) == len(rows) == 1500
    assert list(scored["house_id"]) == list(rows["house_id"])
    assert scored["prediction"].notna().all()
    assert set(scored["model_version"].astype(str)) == {manifest(root)["version"]}
    assert sorted(p.name for p in (root / BUNDLE).iterdir()) == [
        "manifest.json",
        "model.skops",
        "reference_profile.json",
        "signature.json",
    ]
    assert manifest(root)["git_commit"] == git(root, "rev-parse", "HEAD~1").strip()
    assert dvc_stale(root) == set()
    assert git(root, "status", "--porcelain") == ""

    # only deploy.batch.output changes: deploy alone is planned and run, nothing retrains
    text = (root / USECASE).read_text("utf-8")
    (root / USECASE).write_text(
        text.replace("house-prices/predictions.csv", "house-prices/scored.csv"), "utf-8"
    )
    plan = plan_json(root)
    assert to_run(plan) == {"house-prices/deploy": "run"}
    deploy = next(s for s in plan["stages"] if s["id"] == "house-prices/deploy")
    assert any(r.get("path") == "deploy.batch.output" for r in deploy["reasons"])
    applied = json.loads(mlopsctl(root, "apply", "--json", check=True).stdout)
    ran = {s["id"] for s in applied["stages"] if s["status"] == "ran"}
    assert ran == {"house-prices/deploy"}
    assert len(pd.read_csv(root / "artifacts/house-prices/scored.csv")) == 1500


def test_a_port_change_runs_deploy_alone_and_a_failed_gate_keeps_the_old_bundle(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    root = rest_project(tmp_path_factory, tmp_path)  # regression_project(REST_18080), applied
    first = manifest(root)
    assert first["rest"] == {"host": "127.0.0.1", "port": 18080, "max_body_mb": 1.0, "token": None}

    set_deploy(root, "  target: rest\n  rest: {host: 127.0.0.1, port: 18081}\n")
    assert to_run(plan_json(root)) == {"house-prices/deploy": "run"}
    mlopsctl(root, "apply", check=True)
    assert manifest(root)["rest"]["port"] == 18081
    assert manifest(root)["version"] == first["version"]  # same model, new endpoint
    kept = (root / BUNDLE / "manifest.json").read_bytes()

    # a retrain whose gate fails: deploy never runs, the bundle stays as it was
    set_model(root, alpha=5.0, gate="r2: {min: 0.9999}")
    res = mlopsctl(root, "apply", "--json")
    assert res.returncode == 1
    outcome = {s["id"]: s["status"] for s in json.loads(res.stdout)["stages"]}
    assert outcome["house-prices/gate"] == "failed"
    assert outcome["house-prices/deploy"] == "blocked"
    assert (root / BUNDLE / "manifest.json").read_bytes() == kept
