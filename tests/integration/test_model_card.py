"""The model card end to end: written by apply, committed with it, every item read back."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

import pytest

from .conftest import copy_project, dvc, git, mlopsctl
from .test_deploy import regression_project

pytestmark = pytest.mark.slow

NAME = "house-prices"
CARD = f"reports/{NAME}/model_card.md"
USECASE = f"usecases/{NAME}.yaml"
REST = "  target: rest\n  rest: {host: 127.0.0.1, port: 18095}\n"
MONITORING = (
    "\nmonitoring:\n"
    "  current: {format: csv, path: data/current.csv}\n"
    "  drift: {method: psi, threshold: 0.25}\n"
    "  data_quality: {max_missing: 0.1}\n"
    "  performance: {r2: {min: 0.3}}\n"
    "  on_breach: alert\n"
)


def project(tmp_path: Path) -> Path:
    """house-prices with a fast model, a rest deploy and monitoring on a slice of its data."""
    root = regression_project(tmp_path, deploy=REST)
    rows = (root / "data/houses.csv").read_text("utf-8").splitlines()
    (root / "data/current.csv").write_text("\n".join(rows[:301]) + "\n", "utf-8")
    dvc(root, "add", "data/current.csv")
    (root / USECASE).write_text((root / USECASE).read_text("utf-8") + MONITORING, "utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "monitoring")
    return root


@pytest.fixture(scope="module")
def card_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`project`, and the commit its first apply started from; applied once for this module."""
    root = project(tmp_path_factory.mktemp("card"))
    parent = git(root, "rev-parse", "HEAD").strip()
    mlopsctl(root, "apply", check=True)
    return root, parent


def _lock(root: Path) -> dict[str, dict[str, str]]:
    import yaml

    lock = yaml.safe_load((root / "dvc.lock").read_text("utf-8"))
    return {
        name: {o["path"]: o["md5"] for o in [*st.get("outs", []), *st.get("deps", [])]}
        for name, st in lock["stages"].items()
    }


def test_the_model_card_holds_every_item_and_is_committed(
    card_template: tuple[Path, str], tmp_path: Path
) -> None:
    import sklearn

    root = copy_project(card_template[0].parent, tmp_path)  # `project`, then its first apply
    parent = card_template[1]
    card = (root / CARD).read_text("utf-8")
    lines = set(card.splitlines())
    lock = _lock(root)
    metrics = json.loads((root / f"reports/{NAME}/metrics.json").read_text("utf-8"))

    assert card.startswith(f"# Model card: {NAME}\n")
    # goal and objective, owners
    assert "- Problem: regression" in lines
    assert "- Target: `price_k`" in lines
    assert "- Objective: Give agents a first price estimate within a day of listing." in lines
    assert "- Owners: pricing-team@example.com" in lines
    # data sources with hashes and row counts
    houses_md5 = hashlib.md5((root / "data/houses.csv").read_bytes()).hexdigest()
    assert f"| houses | csv | `data/houses.csv` | `{houses_md5}` | 1500 |" in lines
    snapshot = lock[f"{NAME}_ingest"][f"artifacts/{NAME}/snapshot.parquet"]
    assert any(
        ln.startswith(
            f"- Snapshot: `artifacts/{NAME}/snapshot.parquet` md5 `{snapshot}`, 1500 rows"
        )
        for ln in lines
    )
    assert any(
        ln.startswith("- Split: random, test size 0.2, seed 42: 1200 training rows, 300 test rows")
        for ln in lines
    ), card
    # features
    assert "- Numeric (4): `area_m2`, `rooms`, `age_years`, `distance_km`" in lines
    assert "- Categorical (3): `neighbourhood`, `energy_class`, `has_garden`" in lines
    assert "- Dropped (1): `house_id`" in lines
    # estimator and params
    assert "- Estimator: `sklearn.linear_model.Ridge`" in lines
    assert "- Params set in the spec: alpha=1.0" in lines
    assert any(ln.startswith("- Effective params: alpha=1.0, ") for ln in lines)
    # metrics against the goal: value, bound, holds
    assert f"| rmse | {metrics['rmse']:.6g} | <= 500 | yes |" in lines
    # gate verdict and version
    assert "- Verdict: passed: every bound of the goal holds" in lines
    assert f"- Version: v1.0.0 (git tag `{NAME}@v1.0.0`)" in lines
    model = lock[f"{NAME}_train"][f"artifacts/{NAME}/model.skops"]
    assert f"- Model: `artifacts/{NAME}/model.skops` md5 `{model}`" in lines
    assert git(root, "tag", "--list", f"{NAME}@v1.0.0").strip() == f"{NAME}@v1.0.0"
    # deployment target and where it is deployed
    assert "- Target: rest, `http://127.0.0.1:18095` (`mlopsctl serve`)" in lines
    assert f"- Deployed to prod: v1.0.0 (git tag `{NAME}#prod#1`)" in lines
    # monitoring thresholds and last verdict
    assert "- Current batch: `data/current.csv`" in lines
    assert "- Drift: psi, threshold 0.25, every feature" in lines
    assert "- Data quality: max missing 0.1" in lines
    assert "- Performance: r2 >= 0.3" in lines
    assert "- On breach: alert" in lines
    assert any(ln.startswith("- Last verdict: ") and "not checked" not in ln for ln in lines)
    # environment
    assert f"| python | {platform.python_version()} |" in lines
    assert f"| scikit-learn | {sklearn.__version__} |" in lines
    assert any(ln.startswith("| mlopsctl | ") for ln in lines)
    # the commit it came from: the one apply started from
    assert any(ln.startswith(f"- Built from commit: `{parent}`") for ln in lines)

    # committed with the apply, and invisible to plan
    assert git(root, "show", f"HEAD:{CARD}") == card
    assert git(root, "status", "--porcelain") == ""
    assert mlopsctl(root, "plan", "--detailed-exitcode").returncode == 0
    assert "\r" not in card and "20" + "26-" not in card  # no clock time


def test_the_same_inputs_give_the_same_card_bytes(
    card_template: tuple[Path, str], tmp_path: Path
) -> None:
    root = copy_project(card_template[0].parent, tmp_path)  # `project`, then its first apply
    first = (root / CARD).read_bytes()
    commit = git(root, "rev-parse", "HEAD").strip()
    mlopsctl(root, "apply", "--force", check=True)
    assert (root / CARD).read_bytes() == first
    mlopsctl(root, "apply", check=True)
    assert (root / CARD).read_bytes() == first
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "rev-parse", "HEAD").strip() == commit or (
        git(root, "show", f"{commit}:{CARD}").encode() == first
    )
