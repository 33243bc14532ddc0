"""The built-in stages on real data, real scikit-learn and real files (ingest .. gate)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlopsctl.compile.layout import UseCasePaths
from mlopsctl.errors import DataCheckError, GateFailedError, StageFailedError
from mlopsctl.execute.task import limited_threads
from mlopsctl.spec.model import UseCase, build
from mlopsctl.stages import stage_function
from mlopsctl.stages.base import StageContext
from mlopsctl.stages.modelio import load_model

REPO = Path(__file__).resolve().parents[2]
PIPELINE = ("ingest", "validate", "split", "train", "evaluate", "gate")


# --- helpers ----------------------------------------------------------------------------------


def usecase(name: str = "demo", **sections: Any) -> UseCase:
    doc: dict[str, Any] = {
        "apiVersion": "mlopsctl/v1",
        "kind": "UseCase",
        "metadata": {"name": name},
        "goal": {
            "problem": "binary_classification",
            "target": "target",
            "metrics": {"roc_auc": {"min": 0.9}},
        },
        "data": {"sources": {"demo": {"format": "sklearn", "name": "breast_cancer"}}},
        "model": {
            "estimator": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 300},
        },
    }
    for key, value in sections.items():
        doc[key] = {**doc[key], **value} if isinstance(value, Mapping) else value
    return build(UseCase, doc)


def context(root: Path, uc: UseCase, **kwargs: Any) -> StageContext:
    return StageContext(
        root=root, usecase=uc, paths=UseCasePaths(uc.name), staging=root / "staging", **kwargs
    )


def promote(ctx: StageContext) -> list[str]:
    """Move staged outputs into the root, as the runner does; the relative paths moved."""
    moved = []
    if ctx.staging.exists():
        for path in sorted(p for p in ctx.staging.rglob("*") if p.is_file()):
            rel = path.relative_to(ctx.staging)
            dest = ctx.root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, dest)
            moved.append(rel.as_posix())
        shutil.rmtree(ctx.staging)
    return moved


def run(ctx: StageContext, *kinds: str) -> dict[str, dict[str, Any]]:
    summaries = {}
    for kind in kinds:
        try:
            summaries[kind] = stage_function(kind)(ctx)
        except StageFailedError as exc:
            if exc.outputs_valid:
                promote(ctx)
            raise
        promote(ctx)
    return summaries


def read_json(root: Path, rel: str) -> Any:
    return json.loads((root / rel).read_text(encoding="utf-8"))


def digests(root: Path, dirs: Iterable[str] = ("artifacts", "reports")) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for d in dirs
        for p in sorted((root / d).rglob("*"))
        if p.is_file()
    }


def write_csv(root: Path, rel: str, frame: pd.DataFrame) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def customers(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A regression problem over two tables: customers and their regions."""
    rng = np.random.default_rng(seed)
    regions = pd.DataFrame(
        {
            "region_id": [1, 2, 3, 4],
            "region_name": ["north", "south", "east", "west"],
            "density": [120.0, 45.5, 300.0, 80.25],
        }
    )
    plan = rng.choice(["basic", "plus", "premium"], n)
    region = rng.integers(1, 5, n)
    age = rng.integers(18, 80, n).astype(float)
    age[rng.random(n) < 0.03] = np.nan  # some missing values for the imputer
    effect = pd.Series(plan).map({"basic": 0.0, "plus": 20.0, "premium": 50.0}).to_numpy()
    density = regions.set_index("region_id").loc[region, "density"].to_numpy()
    spend = 30 + effect + 0.1 * density + 0.5 * np.nan_to_num(age, nan=40) + rng.normal(0, 3, n)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + n),
            "region_id": region,
            "age": age,
            "plan": plan,
            "spend": spend.round(2),
        }
    )
    return frame, regions


REGRESSION = {
    "goal": {
        "problem": "regression",
        "target": "spend",
        "metrics": {"r2": {"min": 0.8}, "rmse": {"max": 15.0}},
        "primary_metric": "r2",
    },
    "data": {
        "sources": {
            "customers": {"format": "csv", "path": "data/customers.csv"},
            "regions": {"format": "csv", "path": "data/regions.csv"},
        },
        "join": [{"left": "customers", "right": "regions", "on": "region_id", "how": "left"}],
        "features": {
            "numeric": ["age", "density"],
            "categorical": ["plan", "region_name"],
            "drop": ["customer_id"],
        },
        "checks": {"min_rows": 100, "unique": ["customer_id"], "ranges": {"age": {"min": 18}}},
        "split": {"method": "random", "test_size": 0.25, "seed": 7},
    },
    "model": {
        "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
        "params": {"max_iter": 60, "learning_rate": 0.1},
        "preprocessing": {"numeric": "none", "categorical": "onehot", "impute": "median"},
    },
}


def regression_repo(root: Path) -> StageContext:
    frame, regions = customers()
    write_csv(root, "data/customers.csv", frame)
    write_csv(root, "data/regions.csv", regions)
    return context(root, usecase("spend", **REGRESSION))


# --- end to end -------------------------------------------------------------------------------


def test_breast_cancer_end_to_end(tmp_path: Path) -> None:
    uc = usecase(
        goal={
            "metrics": {"roc_auc": {"min": 0.9}, "f1": {"min": 0.8}},
            "primary_metric": "roc_auc",
        },
        data={"split": {"method": "random", "test_size": 0.25, "stratify": True, "seed": 42}},
    )
    ctx = context(tmp_path, uc)
    summaries = run(ctx, *PIPELINE)
    paths = ctx.paths

    assert summaries["ingest"] == {"rows": 569, "columns": 31, "sources": {"demo": 569}}
    assert summaries["validate"]["passed"] is True
    assert summaries["split"] == {"n_train": 426, "n_test": 143}
    assert summaries["train"] == {"n_train": 426, "n_features": 30}
    assert summaries["gate"]["passed"] is True
    assert summaries["gate"]["roc_auc"] >= 0.9

    snapshot = pd.read_parquet(tmp_path / paths.snapshot)
    assert list(snapshot.columns)[-1] == "target" and snapshot.shape == (569, 31)
    train = pd.read_parquet(tmp_path / paths.train_set)
    test = pd.read_parquet(tmp_path / paths.test_set)
    assert abs(train["target"].mean() - test["target"].mean()) < 0.02  # stratified

    training = read_json(tmp_path, paths.training)
    assert training["estimator"] == "sklearn.linear_model.LogisticRegression"
    assert training["params"]["max_iter"] == 300
    assert training["features"]["inferred"] is True
    assert len(training["features"]["numeric"]) == 30 and training["features"]["categorical"] == []
    assert (
        training["classes"] == [0, 1] and training["n_train"] == 426 and training["tuning"] is None
    )
    assert set(training["versions"]) == {"python", "sklearn", "pandas", "numpy", "skops"}

    metrics = read_json(tmp_path, paths.metrics)
    assert set(metrics) == {
        "roc_auc",
        "accuracy",
        "f1",
        "precision",
        "recall",
        "log_loss",
        "n_test",
    }
    assert metrics["n_test"] == 143 and all(
        isinstance(v, float) for k, v in metrics.items() if k != "n_test"
    )
    gate = read_json(tmp_path, paths.gate)
    assert gate["passed"] is True and gate["primary_metric"] == "roc_auc"
    assert [c["metric"] for c in gate["checks"]] == ["f1", "roc_auc"]

    for rel in paths.plot_files("binary_classification"):
        assert (tmp_path / rel).stat().st_size > 0, rel
    confusion = read_json(tmp_path, f"{paths.plots}/confusion.json")
    assert len(confusion) == 143 and set(confusion[0]) == {"actual", "predicted"}
    roc = read_json(tmp_path, f"{paths.plots}/roc.json")
    assert roc[0] == {"fpr": 0.0, "tpr": 0.0, "threshold": 1.0} and roc[-1]["tpr"] == 1.0
    assert (tmp_path / f"{paths.plots}/roc.png").read_bytes().startswith(b"\x89PNG")

    model = load_model(tmp_path / paths.model)
    assert list(model.named_steps) == ["preprocess", "model"]


def test_regression_from_two_joined_csvs(tmp_path: Path) -> None:
    ctx = regression_repo(tmp_path)
    summaries = run(ctx, *PIPELINE)
    assert summaries["ingest"] == {
        "rows": 400,
        "columns": 7,
        "sources": {"customers": 400, "regions": 4},
    }
    snapshot = pd.read_parquet(tmp_path / ctx.paths.snapshot)
    assert list(snapshot.columns) == [
        "customer_id", "region_id", "age", "plan", "spend", "region_name", "density",
    ]  # fmt: skip
    training = read_json(tmp_path, ctx.paths.training)
    assert training["features"] == {
        "numeric": ["age", "density"],
        "categorical": ["plan", "region_name"],
        "dropped": ["customer_id", "region_id"],  # the join key is dropped implicitly
        "inferred": False,
    }
    assert training["params"]["random_state"] == 7  # seeded like the split when left unset
    assert "classes" not in training
    metrics = read_json(tmp_path, ctx.paths.metrics)
    assert set(metrics) == {"rmse", "mae", "r2", "mape", "n_test"} and metrics["n_test"] == 100
    assert metrics["r2"] >= 0.8
    residuals = read_json(tmp_path, f"{ctx.paths.plots}/residuals.json")
    assert len(residuals) == 100
    first = residuals[0]
    assert abs(first["actual"] - first["predicted"] - first["residual"]) < 1e-5
    assert summaries["gate"]["passed"] is True
    assert (tmp_path / f"{ctx.paths.plots}/residuals.png").is_file()


def test_multiclass_iris(tmp_path: Path) -> None:
    uc = usecase(
        goal={"problem": "multiclass_classification", "metrics": {"f1_macro": {"min": 0.8}}},
        data={
            "sources": {"iris": {"format": "sklearn", "name": "iris"}},
            "split": {"stratify": True, "seed": 1},
        },
        model={"estimator": "sklearn.linear_model.LogisticRegression", "params": {}},
    )
    ctx = context(tmp_path, uc)
    run(ctx, *PIPELINE)
    metrics = read_json(tmp_path, ctx.paths.metrics)
    assert set(metrics) == {"accuracy", "f1_macro", "f1_weighted", "log_loss", "n_test"}
    assert [Path(p).name for p in ctx.paths.plot_files(uc.goal.problem)] == [
        "confusion.json",
        "confusion.png",
    ]
    assert {r["actual"] for r in read_json(tmp_path, f"{ctx.paths.plots}/confusion.json")} == {
        "0",
        "1",
        "2",
    }


def test_binary_classifier_without_predict_proba(tmp_path: Path) -> None:
    uc = usecase(model={"estimator": "sklearn.svm.LinearSVC", "params": {"max_iter": 2000}})
    ctx = context(tmp_path, uc)
    run(ctx, *PIPELINE)
    metrics = read_json(tmp_path, ctx.paths.metrics)
    assert "log_loss" not in metrics and metrics["roc_auc"] >= 0.9
    roc = read_json(tmp_path, f"{ctx.paths.plots}/roc.json")
    top = max(r["threshold"] for r in roc[1:])
    assert roc[0]["threshold"] == pytest.approx(top + 1.0, abs=1e-5)  # not inf, not 1.0


def test_reference_profile_predicts_the_training_set_once(tmp_path: Path) -> None:
    # a binary classifier's profile keeps the positive-class probability only: predicting the
    # labels too doubled the profile's cost (the biggest part of it on a large training set)
    from sklearn.linear_model import LogisticRegression

    from mlopsctl.monitor import profile
    from mlopsctl.stages import train
    from mlopsctl.stages.frames import select_features

    calls: list[str] = []

    class Counting(LogisticRegression):
        def predict(self, x: Any) -> Any:
            calls.append("predict")
            return super().predict(x)

        def predict_proba(self, x: Any) -> Any:
            calls.append("predict_proba")
            return super().predict_proba(x)

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    frame["target"] = (frame["a"] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    uc = usecase(data={"features": {"numeric": ["a", "b"]}})
    features = select_features(uc, frame)
    fitted = Counting().fit(frame[["a", "b"]], frame["target"])
    text = train.reference_profile(uc, features, frame, fitted)
    assert calls == ["predict_proba"]
    expected = profile.build_profile(
        frame, ["a", "b"], [], fitted.predict_proba(frame[["a", "b"]])[:, 1], "target"
    )
    assert text == profile.dumps(expected)


def test_evaluate_transforms_the_test_set_once_for_labels_and_probabilities() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from mlopsctl.stages.scoring import last_step

    passes: list[int] = []

    class CountingScaler(StandardScaler):
        def transform(self, x: Any, copy: Any = None) -> Any:
            passes.append(len(x))
            return super().transform(x, copy=copy)

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = (x["a"] - x["b"] + rng.normal(scale=0.5, size=300) > 0).astype(int)
    model = Pipeline([("scale", CountingScaler()), ("model", LogisticRegression())]).fit(x, y)
    passes.clear()
    last, xt = last_step(model, x)
    labels, proba = last.predict(xt), last.predict_proba(xt)
    assert passes == [300]  # Pipeline.predict and .predict_proba would transform twice
    assert np.array_equal(labels, model.predict(x))
    assert np.array_equal(proba, model.predict_proba(x))
    bare = LogisticRegression().fit(x, y)
    same, features = last_step(bare, x)
    assert same is bare and features is x


def test_confusion_records_are_written_as_write_json_writes_them() -> None:
    from mlopsctl.stages.evaluate import confusion_json

    labels = ["0", "1", 'a "quoted" label', "caf\u00e9", "tab\there", "back\\slash", "\u2603"]
    pairs = [(a, p) for a in labels for p in reversed(labels)]
    for case in (pairs, pairs[:1], []):
        rows = [{"predicted": p, "actual": a} for a, p in case]
        expected = json.dumps(rows, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        assert confusion_json(case) == expected


# --- gate -------------------------------------------------------------------------------------


def test_gate_failure_writes_the_verdict_and_names_each_failed_metric(tmp_path: Path) -> None:
    uc = usecase(
        goal={
            "metrics": {
                "roc_auc": {"min": 0.8},
                "f1": {"min": 0.5},
                "recall": {"min": 0.9},
                "log_loss": {"max": 0.5},
            }
        }
    )
    ctx = context(tmp_path, uc)
    metrics = {"roc_auc": 0.7123, "f1": 0.66, "log_loss": 0.61, "n_test": 50}
    (tmp_path / ctx.paths.metrics).parent.mkdir(parents=True)
    (tmp_path / ctx.paths.metrics).write_text(json.dumps(metrics))

    with pytest.raises(GateFailedError) as info:
        run(ctx, "gate")
    message = str(info.value)
    assert "roc_auc = 0.7123, required >= 0.8" in message
    assert "log_loss = 0.6100, required <= 0.5" in message
    assert "recall is missing" in message
    assert "f1" not in message.replace("failed for", "")  # a passing metric is not listed

    verdict = read_json(tmp_path, ctx.paths.gate)
    assert verdict["passed"] is False and verdict["primary_metric"] == "roc_auc"
    assert verdict["checks"] == [
        {"metric": "f1", "value": 0.66, "min": 0.5, "max": None, "passed": True},
        {"metric": "log_loss", "value": 0.61, "min": None, "max": 0.5, "passed": False},
        {"metric": "recall", "value": None, "min": 0.9, "max": None, "passed": False},
        {"metric": "roc_auc", "value": 0.7123, "min": 0.8, "max": None, "passed": False},
    ]


def test_unreachable_bound_fails_the_real_pipeline(tmp_path: Path) -> None:
    ctx = regression_repo(tmp_path)
    goal = {**REGRESSION["goal"], "metrics": {"rmse": {"max": 0.001}}}
    ctx = context(tmp_path, usecase("spend", **{**REGRESSION, "goal": goal}))
    with pytest.raises(GateFailedError, match=r"rmse = \d+\.\d{4}, required <= 0\.001"):
        run(ctx, *PIPELINE)
    assert read_json(tmp_path, ctx.paths.gate)["passed"] is False


# --- validate ---------------------------------------------------------------------------------


def test_every_data_check_reports_counts_and_examples(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "id": [1, 2, 2, 3, 3, 3, 4, 5],
            "age": [7.0, 30.0, 150.0, 40.0, 201.0, 25.0, None, None],
            "contract": [
                "monthly",
                "yearly",
                "weekly",
                "monthly",
                "daily",
                "yearly",
                "weekly",
                None,
            ],
            "label": [0, 1, 0, 1, 0, 1, 0, 1],
        }
    )
    write_csv(tmp_path, "data/raw.csv", frame)
    uc = usecase(
        goal={"target": "label"},
        data={
            "sources": {"raw": {"format": "csv", "path": "data/raw.csv"}},
            "features": {"numeric": ["age", "tenure"], "categorical": ["contract"], "drop": ["id"]},
            "checks": {
                "min_rows": 10,
                "max_missing": 0.2,
                "unique": ["id"],
                "ranges": {"age": {"min": 18, "max": 120}},
                "allowed": {"contract": ["monthly", "yearly"], "missing_col": ["x"]},
            },
        },
    )
    ctx = context(tmp_path, uc)
    run(ctx, "ingest")
    with pytest.raises(DataCheckError) as info:
        run(ctx, "validate")
    lines = str(info.value).splitlines()
    assert lines[0].startswith("data checks failed for use case 'demo' (7 violations")
    assert lines[1:] == [
        "  data.features lists columns that are not in the data: tenure",
        "  min_rows: the data has 8 rows, at least 10 required",
        "  age: 25.0% missing (2 of 8 rows), at most 20.0% allowed",
        "  id: 3 duplicate values (e.g. 2, 3)",
        "  age: 3 values outside [18, 120] (e.g. 7, 150, 201)",
        "  contract: 3 values not in the allowed set 'monthly', 'yearly' (e.g. 'weekly', 'daily')",
        "  missing_col: the column is not in the data (columns: id, age, contract, label)",
    ]

    report = read_json(tmp_path, ctx.paths.validation)
    assert report["passed"] is False and report["rows"] == 8
    rules = {(r["rule"], r.get("column")): r for r in report["rules"]}
    assert rules[("target", "label")]["passed"] is True
    assert rules[("features", None)]["absent"] == ["tenure"]
    assert rules[("min_rows", None)] == {"rule": "min_rows", "min": 10, "rows": 8, "passed": False}
    assert rules[("max_missing", None)]["offending"] == {"age": 0.25}
    assert rules[("unique", "id")]["duplicates"] == 3
    assert rules[("unique", "id")]["examples"] == [2, 3]
    assert rules[("range", "age")]["outside"] == 3
    assert rules[("range", "age")]["examples"] == [7.0, 150.0, 201.0]
    assert rules[("allowed", "contract")]["not_allowed"] == 3
    assert rules[("allowed", "missing_col")]["present"] is False
    assert len(report["violations"]) == 7


def test_validate_passes_and_missing_target_fails(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1, 2, 3], "y": [0, None, 1]})
    write_csv(tmp_path, "data/d.csv", frame)
    uc = usecase(
        goal={"target": "y"}, data={"sources": {"d": {"format": "csv", "path": "data/d.csv"}}}
    )
    ctx = context(tmp_path, uc)
    run(ctx, "ingest")
    with pytest.raises(DataCheckError, match="y: 1 rows have no target value"):
        run(ctx, "validate")
    uc = usecase(
        goal={"target": "z"}, data={"sources": {"d": {"format": "csv", "path": "data/d.csv"}}}
    )
    with pytest.raises(DataCheckError, match="z: the target column is not in the data"):
        run(context(tmp_path, uc), "validate")


# --- train ------------------------------------------------------------------------------------


def test_a_column_neither_feature_nor_dropped_is_an_error(tmp_path: Path) -> None:
    ctx = regression_repo(tmp_path)
    data = {**REGRESSION["data"], "features": {**REGRESSION["data"]["features"], "drop": []}}
    ctx = context(tmp_path, usecase("spend", **{**REGRESSION, "data": data}))
    run(ctx, "ingest", "validate", "split")
    with pytest.raises(StageFailedError) as info:
        run(ctx, "train")
    assert str(info.value) == (
        "column 'customer_id' is neither a feature nor dropped "
        "(add it to data.features or data.features.drop)"
    )
    assert not (tmp_path / ctx.paths.model).exists()


def test_numeric_feature_holding_text_is_an_error(tmp_path: Path) -> None:
    ctx = regression_repo(tmp_path)
    features = {"numeric": ["age", "plan"], "categorical": ["region_name", "density"]}
    data = {**REGRESSION["data"], "features": {**features, "drop": ["customer_id"]}}
    ctx = context(tmp_path, usecase("spend", **{**REGRESSION, "data": data}))
    run(ctx, "ingest", "split")
    with pytest.raises(StageFailedError, match="column 'plan' is listed as numeric"):
        run(ctx, "train")


@pytest.mark.parametrize(
    ("estimator", "module"),
    [
        ("subprocess.Popen", "subprocess"),
        ("turtle.Turtle", "turtle"),
        ("sklearnx.Model", "sklearnx"),
        ("os.system", "os"),
    ],
)
def test_estimator_outside_allowed_modules_is_refused_unimported(
    tmp_path: Path, estimator: str, module: str
) -> None:
    ctx = regression_repo(tmp_path)
    model = {**REGRESSION["model"], "estimator": estimator, "params": {}}
    ctx = context(tmp_path, usecase("spend", **{**REGRESSION, "model": model}))
    run(ctx, "ingest", "split")
    was_imported = module in sys.modules
    with pytest.raises(StageFailedError) as info:
        run(ctx, "train")
    assert str(info.value) == (
        f"estimator module '{module}' is not allowed (allowed_estimator_modules: sklearn)"
    )
    assert (module in sys.modules) == was_imported
    assert "turtle" not in sys.modules


def test_bad_estimator_param_names_the_estimator_and_param(tmp_path: Path) -> None:
    ctx = regression_repo(tmp_path)
    model = {**REGRESSION["model"], "params": {"max_iter": 5, "depth": 3}}
    ctx = context(tmp_path, usecase("spend", **{**REGRESSION, "model": model}))
    run(ctx, "ingest", "split")
    with pytest.raises(StageFailedError, match=r"HistGradientBoostingRegressor.*'depth'"):
        run(ctx, "train")
    model = {**REGRESSION["model"], "params": {"max_iter": "many"}}
    ctx = context(tmp_path, usecase("spend", **{**REGRESSION, "model": model}))
    with pytest.raises(
        StageFailedError, match=r"training .*HistGradientBoostingRegressor failed.*max_iter"
    ):
        run(ctx, "train")


def test_grid_tuning_picks_a_param(tmp_path: Path) -> None:
    uc = usecase(
        model={
            "estimator": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 300},
            "tuning": {"method": "grid", "cv": 3, "params": {"C": [0.0001, 1.0]}},
        },
    )
    ctx = context(tmp_path, uc, n_jobs=1)
    summaries = run(ctx, "ingest", "split", "train")
    assert summaries["train"]["best_params"] == {"C": 1.0}
    tuning = read_json(tmp_path, ctx.paths.training)["tuning"]
    assert tuning["best_params"] == {"C": 1.0} and tuning["scoring"] == "roc_auc"
    assert tuning["cv"] == 3 and tuning["candidates"] == 2 and 0.9 < tuning["best_score"] <= 1
    assert read_json(tmp_path, ctx.paths.training)["params"]["C"] == 1.0
    assert load_model(tmp_path / ctx.paths.model).named_steps["model"].C == 1.0


def test_tuning_an_unknown_param_is_an_error(tmp_path: Path) -> None:
    uc = usecase(
        model={
            "estimator": "sklearn.linear_model.LogisticRegression",
            "tuning": {"method": "random", "n_iter": 2, "params": {"depth": [1, 2]}},
        },
    )
    ctx = context(tmp_path, uc)
    run(ctx, "ingest", "split")
    with pytest.raises(StageFailedError, match="LogisticRegression has no param 'depth'"):
        run(ctx, "train")


# --- split ------------------------------------------------------------------------------------


def test_time_split(tmp_path: Path) -> None:
    days = pd.date_range("2024-12-01", periods=60, freq="D")
    rng = np.random.default_rng(3)
    x = rng.normal(size=60)
    frame = pd.DataFrame(
        {
            "signup_date": days.strftime("%Y-%m-%d"),
            "x": x,
            "tier": rng.choice(["a", "b"], 60),
            "y": (x + rng.normal(0, 0.3, 60) > 0).astype(int),
        }
    )
    write_csv(tmp_path, "data/t.csv", frame)
    uc = usecase(
        goal={"target": "y", "metrics": {"accuracy": {"min": 0.6}}},
        data={
            "sources": {"t": {"format": "csv", "path": "data/t.csv"}},
            "split": {"method": "time", "column": "signup_date", "cutoff": "2025-01-15"},
        },
    )
    ctx = context(tmp_path, uc)
    summaries = run(ctx, "ingest", "validate", "split", "train")
    assert summaries["split"] == {"n_train": 45, "n_test": 15}
    train = pd.read_parquet(tmp_path / ctx.paths.train_set)
    test = pd.read_parquet(tmp_path / ctx.paths.test_set)
    assert train["signup_date"].max() == "2025-01-14" and test["signup_date"].min() == "2025-01-15"
    features = read_json(tmp_path, ctx.paths.training)["features"]
    assert features == {
        "numeric": ["x"],
        "categorical": ["tier"],
        "dropped": ["signup_date"],
        "inferred": True,
    }

    late = usecase(
        goal={"target": "y"},
        data={
            "sources": {"t": {"format": "csv", "path": "data/t.csv"}},
            "split": {"method": "time", "column": "signup_date", "cutoff": "2026-01-01"},
        },
    )
    with pytest.raises(StageFailedError, match="leaves the test set empty"):
        run(context(tmp_path, late), "split")


def test_stratifying_a_regression_is_an_error(tmp_path: Path) -> None:
    ctx = regression_repo(tmp_path)
    data = {**REGRESSION["data"], "split": {"stratify": True}}
    ctx = context(tmp_path, usecase("spend", **{**REGRESSION, "data": data}))
    run(ctx, "ingest")
    with pytest.raises(StageFailedError, match="regression target cannot be stratified"):
        run(ctx, "split")


# --- ingest -----------------------------------------------------------------------------------


def _sqlite(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE loans (id INTEGER, amount REAL, grade TEXT, target INTEGER)")
        conn.executemany(
            "INSERT INTO loans VALUES (?, ?, ?, ?)",
            [(i, 100.0 * i, "ab"[i % 2], i % 2) for i in range(1, 41)],
        )
    conn.close()


def test_sqlite_source_with_env_url(tmp_path: Path) -> None:
    _sqlite(tmp_path / "data" / "s3cr3t.sqlite")
    source = {"format": "sql", "url": "${env:DB_URL}", "query": "SELECT * FROM loans ORDER BY id"}
    uc = usecase(data={"sources": {"loans": source}})
    env = {"DB_URL": "sqlite:///data/s3cr3t.sqlite"}
    ctx = context(tmp_path, uc, env=env)
    assert run(ctx, "ingest")["ingest"] == {"rows": 40, "columns": 4, "sources": {"loans": 40}}
    snapshot = pd.read_parquet(tmp_path / ctx.paths.snapshot)
    assert list(snapshot.columns) == ["id", "amount", "grade", "target"]
    assert snapshot["amount"].iloc[-1] == 4000.0

    with pytest.raises(StageFailedError) as info:
        run(context(tmp_path, uc, env={}), "ingest")
    assert "environment variable DB_URL is not set" in str(info.value)
    assert "${env:DB_URL}" in str(info.value)

    bad = usecase(data={"sources": {"loans": {**source, "query": "SELECT * FROM nope"}}})
    with pytest.raises(StageFailedError) as info:
        run(context(tmp_path, bad, env=env), "ingest")
    message = str(info.value)
    assert "no such table: nope" in message and "${env:DB_URL}" in message
    assert "s3cr3t" not in message and info.value.__cause__ is None
    assert info.value.__suppress_context__

    gone = {"DB_URL": "sqlite:///data/s3cr3t-missing.sqlite"}
    with pytest.raises(StageFailedError, match="does not exist") as info:
        run(context(tmp_path, uc, env=gone), "ingest")
    assert "s3cr3t" not in str(info.value)


def test_missing_csv_and_bad_join_key_are_clear_errors(tmp_path: Path) -> None:
    uc = usecase(data={"sources": {"raw": {"format": "csv", "path": "data/absent.csv"}}})
    with pytest.raises(
        StageFailedError, match=r"source 'raw': file data/absent.csv does not exist"
    ):
        run(context(tmp_path, uc), "ingest")

    ctx = regression_repo(tmp_path)
    data = {**REGRESSION["data"], "join": [{"left": "customers", "right": "regions", "on": "zone"}]}
    ctx = context(tmp_path, usecase("spend", **{**REGRESSION, "data": data}))
    with pytest.raises(StageFailedError, match=r"key column 'zone' is not in the left side"):
        run(ctx, "ingest")


def test_parquet_source_and_an_inner_join_that_multiplies_rows(tmp_path: Path) -> None:
    orders = pd.DataFrame({"cid": [1, 1, 2, 3], "amount": [10.0, 20.0, 5.0, 7.5]})
    people = pd.DataFrame({"cid": [1, 2, 2, 9], "name": ["ann", "bob", "bob2", "zed"]})
    (tmp_path / "data").mkdir()
    orders.to_parquet(tmp_path / "data" / "orders.parquet", index=False)
    write_csv(tmp_path, "data/people.csv", people)
    uc = usecase(
        goal={"target": "amount"},
        data={
            "sources": {
                "orders": {"format": "parquet", "path": "data/orders.parquet"},
                "people": {"format": "csv", "path": "data/people.csv"},
            },
            "join": [{"left": "orders", "right": "people", "on": ["cid"], "how": "inner"}],
        },
    )
    ctx = context(tmp_path, uc)
    summary = run(ctx, "ingest")["ingest"]
    assert summary == {"rows": 4, "columns": 3, "sources": {"orders": 4, "people": 4}}
    snapshot = pd.read_parquet(tmp_path / ctx.paths.snapshot)
    assert snapshot.to_dict("list") == {
        "cid": [1, 1, 2, 2],
        "amount": [10.0, 20.0, 5.0, 5.0],
        "name": ["ann", "ann", "bob", "bob2"],
    }


# --- determinism and import cost --------------------------------------------------------------


def test_outputs_are_byte_identical_across_runs(tmp_path: Path) -> None:
    """ingest..evaluate twice: once here, once in a fresh process with another hash seed."""
    # Both runs on one thread, as a stage runs under run_job's cap: HistGradientBoosting sums
    # gradients in parallel, so its model depends on the thread count, and this process's OpenMP
    # pool may have been sized by an earlier test (a library loaded under a cap keeps it).
    one, two = tmp_path / "one", tmp_path / "two"
    with limited_threads(1):
        run(regression_repo(one), "ingest", "validate", "split", "train", "evaluate")
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1])\n"
        "import test_stages as t\n"
        "with t.limited_threads(1):\n"
        "    t.run(t.regression_repo(Path(sys.argv[2])), "
        "'ingest', 'validate', 'split', 'train', 'evaluate')\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), str(two)], env=env, check=True
    )
    first, second = digests(one), digests(two)
    assert first == second
    # snapshot, train, test, model, signature, reference profile, 3 reports, 2 plot files
    assert len(first) == 11


def test_n_jobs_is_not_part_of_the_model(tmp_path: Path) -> None:
    model = {"estimator": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 8}}
    results = []
    for n_jobs in (1, 2):
        ctx = context(tmp_path / str(n_jobs), usecase(model=model), n_jobs=n_jobs)
        run(ctx, "ingest", "split", "train")
        results.append(digests(ctx.root))
        params = read_json(ctx.root, ctx.paths.training)["params"]
        assert params["n_jobs"] is None and params["random_state"] == 42
    assert results[0] == results[1]


def test_importing_a_stage_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "import mlopsctl.stages.ingest, mlopsctl.stages.validate, mlopsctl.stages.split\n"
        "import mlopsctl.stages.train, mlopsctl.stages.evaluate, mlopsctl.stages.gate\n"
        "import mlopsctl.stages.modelio, mlopsctl.stages.frames\n"
        "heavy = {'pandas', 'numpy', 'sklearn', 'skops', 'matplotlib', 'pyarrow', 'scipy'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
