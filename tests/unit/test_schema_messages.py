"""Schema errors at one spot: distinct problems are all kept, restatements of one are not."""

from __future__ import annotations

from mlopsctl.spec.schema import validate_against_schema
from mlopsctl.spec.yamlio import load_yaml


def test_each_missing_key_is_reported() -> None:
    doc, diags = load_yaml("goal:\n  - x\n", "usecases/bad.yaml")
    assert diags == []
    messages = [d.format() for d in validate_against_schema(doc, "UseCase")]
    for key in ("apiVersion", "kind", "metadata", "data", "model"):
        assert f"usecases/bad.yaml:1:1: missing required key '{key}'" in messages
    assert "usecases/bad.yaml:2:3: goal: expected a mapping, got a list" in messages


def test_an_unknown_metric_is_reported_once() -> None:
    text = (
        "apiVersion: mlopsctl/v1\nkind: UseCase\nmetadata: {name: x}\n"
        "goal:\n  problem: regression\n  target: y\n  metrics:\n    roc_auc: {min: 0.5}\n"
        "data: {sources: {a: {format: sklearn, name: diabetes}}}\n"
        "model: {estimator: sklearn.linear_model.Ridge}\n"
    )
    doc, _ = load_yaml(text, "u.yaml")
    diags = [d for d in validate_against_schema(doc, "UseCase") if d.path == "goal.metrics.roc_auc"]
    assert len(diags) == 1
    assert diags[0].line == 8 and "expected one of: rmse, mae, r2, mape" in diags[0].message
