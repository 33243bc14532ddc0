"""Checking a batch against a reference profile: drift verdicts, schema and quality problems,
performance, streaming (chunking changes nothing), and the JSON output against its schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from jsonschema import Draft202012Validator

from mlopsctl.monitor import profile as prof
from mlopsctl.monitor.check import (
    MetricBound,
    MonitorInputError,
    Settings,
    check,
    model_predictor,
)
from mlopsctl.monitor.render import render_json

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "mlopsctl" / "schemas" / "monitor.schema.json").read_text("utf-8"))
NUMERIC = ["income", "age", "balance", "n_products"]
CATEGORICAL = ["contract"]


def credit(
    n: int, seed: int, *, shift: float = 0.0, scale: float = 1.0, mix: Any = None
) -> pd.DataFrame:
    """A credit-like table; *shift* moves income by that many standard deviations, *scale*
    widens age around its mean, *mix* changes the contract mix."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.normal(50_000 + shift * 12_000, 12_000, n),
            "age": 40 + rng.normal(0, 11, n) * scale,
            "balance": np.where(rng.random(n) < 0.3, 0.0, rng.lognormal(7, 1, n)),
            "n_products": rng.integers(1, 5, n),
            "contract": rng.choice(["monthly", "yearly", "two_year"], n, p=mix or [0.5, 0.3, 0.2]),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return credit(50_000, seed=0)


@pytest.fixture(scope="module")
def profile(reference: pd.DataFrame) -> dict[str, Any]:
    return prof.build_profile(reference, NUMERIC, CATEGORICAL)


def valid(doc: object) -> list[str]:
    return [e.message for e in Draft202012Validator(SCHEMA).iter_errors(doc)]


def test_the_schema_is_valid_and_pretty_printed() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    text = (ROOT / "mlopsctl" / "schemas" / "monitor.schema.json").read_text("utf-8")
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"


def test_a_batch_from_the_training_distribution_flags_nothing(profile: dict[str, Any]) -> None:
    result = check("churn", profile, credit(20_000, seed=1), Settings(threshold=0.2))
    doc = result.to_json()
    assert valid([doc]) == []
    assert [f["name"] for f in doc["features"]] == [*NUMERIC, *CATEGORICAL]
    assert not any(f["drifted"] for f in doc["features"]), doc
    assert doc["problems"] == []
    assert doc["breach"] is False
    assert all(f["value"] < 0.01 for f in doc["features"])


def test_shift_scale_and_mix_flag_exactly_the_features_over_the_threshold(
    profile: dict[str, Any],
) -> None:
    batch = credit(20_000, seed=2, shift=0.5, scale=2.0, mix=[0.2, 0.3, 0.5])
    result = check("churn", profile, batch, Settings(threshold=0.2))
    values = {f.name: f.value for f in result.features}
    flagged = {f.name for f in result.features if f.drifted}
    assert flagged == {"income", "age", "contract"}, values
    assert flagged == {name for name, v in values.items() if v is not None and v > 0.2}
    # +0.5 sd on deciles: a little under the continuous limit d^2 = 0.25
    assert 0.2 < values["income"] < 0.25
    assert result.breach


def test_chunking_and_file_format_change_nothing(profile: dict[str, Any], tmp_path: Path) -> None:
    batch = credit(5_000, seed=3, shift=0.3)
    batch.loc[::50, "income"] = np.nan
    csv, parquet = tmp_path / "b.csv", tmp_path / "b.parquet"
    batch.to_csv(csv, index=False)
    batch.to_parquet(parquet, index=False)
    settings = Settings(method="ks", threshold=0.05)
    whole = check("u", profile, batch, settings, chunk_rows=1_000_000).to_json()
    for source, chunk in ((batch, 333), (csv, 777), (parquet, 1000), (csv, 10_000)):
        assert check("u", profile, source, settings, chunk_rows=chunk).to_json() == whole
    income = whole["features"][0]
    assert income["missing"] == pytest.approx(0.02)
    assert income["statistic"] == "ks" and income["p_value"] is not None
    assert whole["features"][-1]["statistic"] == "chisquare"


def test_schema_problems_are_named(profile: dict[str, Any], tmp_path: Path) -> None:
    batch = credit(2_000, seed=4).drop(columns=["balance"])
    batch["region"] = "north"
    batch["age"] = batch["age"].astype(object)
    batch.loc[[3, 8], "age"] = "unknown"
    batch.loc[:9, "contract"] = "weekly"
    path = tmp_path / "batch.csv"
    batch.to_csv(path, index=False)
    result = check("churn", profile, path, Settings(max_missing=0.05))
    assert result.problems == (
        "missing column: balance",
        "new column: region",
        "wrong dtype: age: 2 values are not numbers (e.g. 'unknown')",
        "unseen category: contract: 'weekly' (10 rows)",
    )
    assert [f.name for f in result.features] == ["income", "age", "n_products", "contract"]
    assert result.breach
    assert valid([result.to_json()]) == []


def test_too_many_missing_values_is_a_problem(profile: dict[str, Any]) -> None:
    batch = credit(1_000, seed=5)
    batch.loc[:149, "income"] = np.nan
    result = check("churn", profile, batch, Settings(max_missing=0.10))
    assert result.problems == ("too many missing values: income: 15.0% > 10.0%",)
    assert check("churn", profile, batch, Settings(max_missing=0.2)).problems == ()


def test_watched_features_must_be_in_the_profile(profile: dict[str, Any]) -> None:
    only = check("u", profile, credit(500, seed=6), Settings(features=("age",)))
    assert [f.name for f in only.features] == ["age"]
    with pytest.raises(MonitorInputError, match="not in the reference profile: height"):
        check("u", profile, credit(500, seed=6), Settings(features=("height",)))


def test_an_unreadable_batch_is_a_user_error(profile: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(MonitorInputError, match="cannot read the batch"):
        check("u", profile, tmp_path / "nope.csv", Settings())
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(MonitorInputError, match="cannot read the batch"):
        check("u", profile, tmp_path / "bad.parquet", Settings())
    with pytest.raises(MonitorInputError, match="unknown 'wasserstein'"):
        check("u", profile, credit(10, seed=0), Settings(method="wasserstein"))


def test_profile_is_deterministic_json(reference: pd.DataFrame) -> None:
    first = prof.dumps(prof.build_profile(reference, NUMERIC, CATEGORICAL))
    second = prof.dumps(prof.build_profile(reference.copy(), NUMERIC, CATEGORICAL))
    assert first == second
    loaded = prof.loads(first)
    income = loaded["features"]["income"]
    assert sum(income["bins"]["counts"]) == len(reference)
    assert len(income["bins"]["edges"]) == 9 and len(income["grid"]["edges"]) == 99
    assert loaded["features"]["n_products"]["bins"]["discrete"] is True
    assert loaded["features"]["contract"]["categories"].keys() == {"monthly", "yearly", "two_year"}
    with pytest.raises(ValueError, match="format_version"):
        prof.loads('{"format_version": 99}')


def test_performance_and_prediction_drift_with_a_real_model(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    def labelled(n: int, seed: int, flip: float) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, 2))
        y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
        y = np.where(rng.random(n) < flip, 1 - y, y)
        return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": y})

    train = labelled(4_000, 0, flip=0.0)
    model = LogisticRegression().fit(train[["a", "b"]], train["label"])
    proba = model.predict_proba(train[["a", "b"]])
    scores = prof.prediction_values(
        model.predict(train[["a", "b"]]), proba, "binary_classification"
    )
    reference = prof.build_profile(train, ["a", "b"], [], predictions=scores, target="label")
    settings = Settings(
        performance={"roc_auc": MetricBound(min=0.9), "accuracy": MetricBound(min=0.9)},
        problem="binary_classification",
        target="label",
    )
    predict = model_predictor(model)
    good = check("u", reference, labelled(3_000, 1, flip=0.0), settings, predict, chunk_rows=500)
    noisy = check("u", reference, labelled(3_000, 2, flip=0.3), settings, predict, chunk_rows=500)
    assert good.performance["roc_auc"].holds and good.performance["accuracy"].holds
    assert not good.breach, good.to_json()
    assert good.prediction is not None and not good.prediction.drifted
    assert noisy.performance["roc_auc"].value is not None
    assert noisy.performance["roc_auc"].value < 0.9 and not noisy.performance["roc_auc"].holds
    assert noisy.breach
    doc = json.loads(render_json([good, noisy]))
    assert valid(doc) == []
    assert doc[1]["performance"]["roc_auc"]["min"] == 0.9


def test_without_the_target_there_is_no_performance(profile: dict[str, Any]) -> None:
    settings = Settings(performance={"rmse": MetricBound(max=1.0)}, target="absent")
    assert check("u", profile, credit(300, seed=7), settings).performance == {}


def test_memory_of_a_chunked_check_does_not_grow_with_the_batch(
    profile: dict[str, Any], tmp_path: Path
) -> None:
    import tracemalloc

    path = tmp_path / "big.csv"
    credit(200_000, seed=8).to_csv(path, index=False)

    def peak(chunk_rows: int) -> int:
        tracemalloc.start()
        try:
            result = check("u", profile, path, Settings(), chunk_rows=chunk_rows)
            assert result.rows == 200_000
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    whole, chunked = peak(200_000), peak(10_000)
    # one chunk of 10,000 rows instead of the whole 200,000: a fraction of the memory
    assert chunked < whole / 5, (chunked, whole)


def test_settings_come_from_the_spec_monitoring_section() -> None:
    from mlopsctl.spec.loader import load_usecases

    files = [ROOT / "tests" / "fixtures" / "spec_example" / "usecases" / "churn.yaml"]
    usecases, diags = load_usecases(files[0].parents[1], files, None)
    assert diags == []
    settings = Settings.from_usecase(usecases[0].spec)
    assert (settings.method, settings.threshold, settings.max_missing) == ("psi", 0.2, 0.10)
    assert settings.performance == {"roc_auc": MetricBound(min=0.75)}
    assert (settings.problem, settings.target) == ("binary_classification", "churned")
