"""The deploy stage and the scoring it shares with `mlopsctl serve`, on real models and files."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlopsctl.compile.layout import UseCasePaths
from mlopsctl.errors import StageFailedError
from mlopsctl.spec.model import UseCase, build
from mlopsctl.stages import stage_function
from mlopsctl.stages.base import StageContext
from mlopsctl.stages.modelio import load_model
from mlopsctl.stages.scoring import Signature, check_frame, model_frame, predict

PIPELINE = ("ingest", "validate", "split", "train", "evaluate", "gate")


def usecase(deploy: Mapping[str, Any], **overrides: Any) -> UseCase:
    doc: dict[str, Any] = {
        "apiVersion": "mlopsctl/v1",
        "kind": "UseCase",
        "metadata": {"name": "shop"},
        "goal": {
            "problem": "binary_classification",
            "target": "bought",
            "metrics": {"roc_auc": {"min": 0.6}},
        },
        "data": {
            "sources": {"visits": {"format": "csv", "path": "data/visits.csv"}},
            "features": {"numeric": ["age", "minutes"], "categorical": ["device"]},
            "split": {"method": "random", "test_size": 0.25, "seed": 1},
        },
        "model": {
            "estimator": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 500},
            "preprocessing": {"numeric": "standard", "categorical": "onehot", "impute": "median"},
        },
        "deploy": dict(deploy),
    }
    doc.update(overrides)
    return build(UseCase, doc)


def visits(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n).astype(float)
    age[rng.random(n) < 0.05] = np.nan
    minutes = rng.gamma(2.0, 5.0, n).round(2)
    device = rng.choice(["desktop", "mobile", "tablet"], n)
    score = 0.05 * minutes - 0.02 * np.nan_to_num(age, nan=40) + (device == "mobile") * 0.8
    bought = (score + rng.normal(0, 0.5, n) > 0).astype(int)
    return pd.DataFrame({"age": age, "minutes": minutes, "device": device, "bought": bought})


def write_csv(root: Path, rel: str, frame: pd.DataFrame) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(root / rel, index=False)


def promote(ctx: StageContext) -> None:
    """Move staged outputs into place, as the runner does."""
    if ctx.staging.exists():
        for path in sorted(p for p in ctx.staging.rglob("*") if p.is_file()):
            dest = ctx.root / path.relative_to(ctx.staging)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, dest)
        shutil.rmtree(ctx.staging)


def context(root: Path, uc: UseCase) -> StageContext:
    return StageContext(root=root, usecase=uc, paths=UseCasePaths(uc.name), staging=root / "stg")


def trained(root: Path, uc: UseCase) -> StageContext:
    write_csv(root, "data/visits.csv", visits(600))
    ctx = context(root, uc)
    for kind in PIPELINE:
        stage_function(kind)(ctx)
        promote(ctx)
    return ctx


BATCH = {
    "target": "batch",
    "batch": {
        "input": {"format": "csv", "path": "data/to_score.csv"},
        "output": "artifacts/shop/scored.csv",
    },
}


@pytest.fixture(scope="module")
def batch_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("deploy")
    trained(root, usecase(BATCH))
    return root


def copy_repo(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "repo"
    shutil.copytree(src, dst)
    return dst


def test_batch_scores_every_row_like_one_row_predict(batch_repo: Path, tmp_path: Path) -> None:
    root = copy_repo(batch_repo, tmp_path)
    rows = visits(57, seed=7).drop(columns=["bought"])
    rows.insert(0, "visit_id", range(1000, 1057))
    write_csv(root, "data/to_score.csv", rows)
    ctx = context(root, usecase(BATCH))
    summary = stage_function("deploy")(ctx)
    promote(ctx)

    out = pd.read_csv(root / "artifacts/shop/scored.csv")
    manifest = json.loads((root / "artifacts/shop/deploy/manifest.json").read_text("utf-8"))
    assert summary["rows"] == len(out) == 57
    assert list(out["visit_id"]) == list(range(1000, 1057))
    assert set(out["model_version"].astype(str)) == {manifest["version"]}
    model = load_model(root / "artifacts/shop/deploy/model.skops")
    for i in range(len(rows)):
        one = rows.iloc[[i]][["age", "minutes", "device"]]
        assert out["prediction"][i] == model.predict(one)[0]
        proba = model.predict_proba(one)[0]
        assert [out["probability_0"][i], out["probability_1"][i]] == pytest.approx(proba, abs=0)


def test_the_bundle_and_its_manifest(batch_repo: Path, tmp_path: Path) -> None:
    root = copy_repo(batch_repo, tmp_path)
    write_csv(root, "data/to_score.csv", visits(5).drop(columns=["bought"]))
    ctx = context(root, usecase(BATCH))
    stage_function("deploy")(ctx)
    promote(ctx)
    bundle = root / "artifacts/shop/deploy"
    assert sorted(p.name for p in bundle.iterdir()) == [
        "manifest.json",
        "model.skops",
        "reference_profile.json",
        "signature.json",
    ]
    # the monitoring reference profile is the one train wrote
    assert (bundle / "reference_profile.json").read_bytes() == (
        root / "artifacts/shop/reference_profile.json"
    ).read_bytes()
    # the bundle's model is the very file train wrote; its version is that file's hash
    assert (bundle / "model.skops").read_bytes() == (
        root / "artifacts/shop/model.skops"
    ).read_bytes()
    manifest = json.loads((bundle / "manifest.json").read_text("utf-8"))
    assert manifest["usecase"] == "shop"
    assert manifest["model_sha256"].startswith(manifest["version"])
    assert manifest["gate"]["passed"] is True
    assert manifest["metrics"]["roc_auc"] > 0.6
    assert set(manifest["data_md5"]) == {"train", "test", "batch_input"}
    assert manifest["versions"]["mlopsctl"]
    assert manifest["versions"]["trained_with"]["sklearn"]
    assert manifest["created_at"].endswith("Z")
    assert set(manifest["files"]) == {"model.skops", "reference_profile.json", "signature.json"}
    sig = json.loads((bundle / "signature.json").read_text("utf-8"))
    by_name = {f["name"]: f for f in sig["features"]}
    assert by_name["device"]["categories"] == ["desktop", "mobile", "tablet"]
    assert by_name["device"]["unknown"] == "ignore"  # one-hot with handle_unknown="ignore"
    assert by_name["age"]["missing_seen"] > 0 and by_name["age"]["nullable"] is True
    assert by_name["minutes"]["min"] >= 0 and by_name["minutes"]["max"] > by_name["minutes"]["min"]
    assert sig["classes"] == [0, 1]


def test_bad_batch_input_lists_every_problem_and_keeps_the_last_output(
    batch_repo: Path, tmp_path: Path
) -> None:
    root = copy_repo(batch_repo, tmp_path)
    (root / "artifacts/shop").mkdir(parents=True, exist_ok=True)
    (root / "artifacts/shop/scored.csv").write_text("last good output\n", "utf-8")
    bad = pd.DataFrame({"age": ["young", 30, 41], "device": ["mobile", "desktop", "mobile"]})
    write_csv(root, "data/to_score.csv", bad)
    ctx = context(root, usecase(BATCH))
    with pytest.raises(StageFailedError) as err:
        stage_function("deploy")(ctx)
    message = err.value.message
    assert "missing column 'minutes'" in message
    assert "column 'age': expected numbers" in message and "'young'" in message
    assert "2 problems" in message
    assert (root / "artifacts/shop/scored.csv").read_text("utf-8") == "last good output\n"


def test_a_failed_gate_never_deploys(batch_repo: Path, tmp_path: Path) -> None:
    root = copy_repo(batch_repo, tmp_path)
    write_csv(root, "data/to_score.csv", visits(5).drop(columns=["bought"]))
    gate = root / "reports/shop/gate.json"
    verdict = json.loads(gate.read_text("utf-8"))
    gate.write_text(json.dumps({**verdict, "passed": False}), "utf-8")
    ctx = context(root, usecase(BATCH))
    with pytest.raises(StageFailedError, match="did not pass"):
        stage_function("deploy")(ctx)
    assert not (ctx.staging / "artifacts/shop/deploy/manifest.json").exists()


# --- the signature checks ---------------------------------------------------------------------


def signature(unknown: str = "error", nullable: bool = False) -> Signature:
    return Signature.from_json(
        {
            "problem": "regression",
            "features": [
                {"name": "x", "kind": "numeric", "dtype": "float64", "nullable": nullable},
                {
                    "name": "colour",
                    "kind": "categorical",
                    "dtype": "object",
                    "nullable": nullable,
                    "categories": ["blue", "red"],
                    "unknown": unknown,
                },
            ],
        }
    )


def test_unseen_category_fails_only_when_the_encoder_refuses_it() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "colour": ["red", "green"]})
    _, problems = check_frame(signature("error"), frame)
    assert problems == [
        "column 'colour': categories not seen in training, which the encoder refuses: "
        "'green' (rows 2)"
    ]
    model_input, problems = check_frame(signature("ignore"), frame)
    assert problems == []
    assert list(model_input["colour"]) == ["red", "green"]


def test_missing_values_and_types() -> None:
    frame = pd.DataFrame({"x": [1.0, None, True], "colour": ["red", None, 3]})
    _, problems = check_frame(signature(nullable=False), frame)
    assert any("'x': 1 missing value(s) (rows 2)" in p for p in problems)
    assert any("'x': expected numbers" in p and "True" in p for p in problems)
    assert any("'colour': 1 missing value(s)" in p for p in problems)
    frame = pd.DataFrame({"x": [1.0, None], "colour": ["red", None]})
    model_input, problems = check_frame(signature(nullable=True), frame)
    assert problems == []
    assert np.isnan(model_input["x"][1]) and model_input["colour"][1] is not None


def test_csv_integers_become_the_string_categories_training_saw() -> None:
    sig = Signature.from_json(
        {
            "problem": "regression",
            "features": [
                {
                    "name": "zone",
                    "kind": "categorical",
                    "dtype": "object",
                    "nullable": False,
                    "categories": ["1", "2"],
                    "unknown": "error",
                }
            ],
        }
    )
    model_input, problems = check_frame(sig, pd.DataFrame({"zone": [1, 2]}))
    assert problems == [] and list(model_input["zone"]) == ["1", "2"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "estimator",
    ["sklearn.linear_model.LogisticRegression", "sklearn.ensemble.HistGradientBoostingClassifier"],
)
def test_batched_scores_equal_one_row_predictions_bit_for_bit(
    estimator: str, tmp_path: Path
) -> None:
    """BLAS rounds a matrix product differently from a one-row product: predict must not."""
    uc = usecase(
        {"target": "none"},
        model={
            "estimator": estimator,
            "params": {},
            "preprocessing": {"numeric": "standard", "categorical": "onehot", "impute": "median"},
        },
    )
    ctx = trained(tmp_path, uc)
    model = load_model(tmp_path / ctx.paths.model)
    sig = Signature.load(tmp_path / ctx.paths.signature)
    rows = visits(120, seed=3)  # a batch BLAS blocks differently from one row; 120 rows, 240 calls
    frame = model_frame(sig, {n: [None if pd.isna(v) else v for v in rows[n]] for n in sig.names})
    scores = predict(model, frame)
    one_by_one = [model.predict_proba(frame.iloc[[i]])[0].tolist() for i in range(len(frame))]
    assert scores.probabilities == one_by_one
    assert scores.predictions == [model.predict(frame.iloc[[i]])[0] for i in range(len(frame))]


@pytest.mark.parametrize(
    "preprocessing",
    [
        {"numeric": "standard", "categorical": "onehot", "impute": "median"},
        {"numeric": "minmax", "categorical": "ordinal", "impute": "mean"},
        {"numeric": "robust", "categorical": "onehot", "impute": "most_frequent"},
    ],
)
def test_the_fast_preprocessing_equals_scikit_learn_bit_for_bit(
    preprocessing: dict[str, str], tmp_path: Path
) -> None:
    from mlopsctl.stages.fastprep import compile_preprocessing

    uc = usecase(
        {"target": "none"},
        model={
            "estimator": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 500},
            "preprocessing": preprocessing,
        },
    )
    ctx = trained(tmp_path, uc)
    model = load_model(tmp_path / ctx.paths.model)
    sig = Signature.load(tmp_path / ctx.paths.signature)
    fast = compile_preprocessing(model, sig)
    assert fast is not None
    rows = visits(250, seed=11)
    rows.loc[5, "device"] = "smart-tv"  # unseen: the encoder ignores or encodes it
    rows.loc[6, "minutes"] = np.nan
    columns = {n: [None if pd.isna(v) else v for v in rows[n]] for n in sig.names}
    expected = model[:-1].transform(model_frame(sig, columns))
    got = fast(columns, len(rows))
    assert got.dtype == expected.dtype and np.array_equal(got, expected, equal_nan=True)


def test_the_fast_preprocessing_refuses_what_it_does_not_know() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import PolynomialFeatures

    from mlopsctl.stages.fastprep import compile_preprocessing

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [1.0, 4.0, 9.0, 16.0]})
    model = Pipeline(
        [
            ("preprocess", ColumnTransformer([("numeric", PolynomialFeatures(), ["x"])])),
            ("model", LinearRegression()),
        ]
    ).fit(frame[["x"]], frame["y"])
    sig = Signature.from_json(
        {
            "problem": "regression",
            "features": [{"name": "x", "kind": "numeric", "dtype": "float64", "nullable": False}],
        }
    )
    assert compile_preprocessing(model, sig) is None
