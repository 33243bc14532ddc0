"""The request forms of `POST /predict` and the validator generated from a signature."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlopsctl.serve.requests import BadRequest, RequestSchema
from mlopsctl.stages.scoring import Signature

ROOT = Path(__file__).resolve().parents[2]

SIGNATURE = Signature.from_json(
    {
        "problem": "binary_classification",
        "features": [
            {"name": "mean radius", "kind": "numeric", "dtype": "float64", "nullable": False},
            {"name": "age", "kind": "numeric", "dtype": "int64", "nullable": True},
            {
                "name": "plan",
                "kind": "categorical",
                "dtype": "object",
                "nullable": False,
                "categories": ["basic", "plus"],
                "unknown": "ignore",
            },
        ],
        "classes": [0, 1],
    }
)
GOOD = {"mean radius": 12.5, "age": None, "plan": "plus"}


@pytest.fixture(scope="module")
def schema() -> RequestSchema:
    return RequestSchema(SIGNATURE)


@pytest.mark.parametrize(
    "body",
    [
        [GOOD],
        {"records": [GOOD]},
        {"instances": [GOOD]},
        {"dataframe_records": [GOOD]},
        {"dataframe_split": {"columns": list(GOOD), "data": [list(GOOD.values())]}},
        {"dataframe_split": {"columns": list(GOOD), "data": [list(GOOD.values())], "index": [0]}},
    ],
)
def test_every_body_form_gives_the_same_records(schema: RequestSchema, body: object) -> None:
    assert schema.parse(json.dumps(body).encode()) == [GOOD]


def test_extra_keys_are_ignored_and_integers_are_numbers(schema: RequestSchema) -> None:
    rows = schema.parse(json.dumps([{**GOOD, "id": 7, "mean radius": 12}]).encode())
    assert rows == [{**GOOD, "mean radius": 12.0}]


@pytest.mark.parametrize(
    "body,status,where",
    [
        (b"", 400, None),
        (b"{oops", 400, None),
        (b"[]", 422, None),
        (b'"text"', 422, None),
        (json.dumps([{**GOOD, "plan": "gold"}]).encode(), 422, "plan"),
        (json.dumps([{**GOOD, "mean radius": "12"}]).encode(), 422, "mean radius"),
        (json.dumps([{**GOOD, "mean radius": None}]).encode(), 422, "mean radius"),
        (json.dumps([{"age": 3, "plan": "basic"}]).encode(), 422, "mean radius"),
        (json.dumps({"records": [GOOD], "extra": 1}).encode(), 422, None),
        (
            json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}).encode(),
            422,
            None,
        ),
        (json.dumps([GOOD]).replace("12.5", "NaN").encode(), 422, "mean radius"),
    ],
)
def test_bad_bodies_name_the_problem(
    schema: RequestSchema, body: bytes, status: int, where: str | None
) -> None:
    with pytest.raises(BadRequest) as err:
        schema.parse(body)
    assert err.value.status == status
    assert err.value.message
    if where is not None:
        assert err.value.detail[0]["loc"][-1] == where
        assert where in err.value.message


def test_the_openapi_body_shows_the_real_fields(schema: RequestSchema) -> None:
    body = schema.body_schema()
    record = body["$defs"]["Record"]
    assert set(record["required"]) == {"mean radius", "age", "plan"}
    assert record["properties"]["plan"]["enum"] == ["basic", "plus"]
    assert len(body["anyOf"]) == 5


def test_only_the_serve_command_imports_the_serve_package() -> None:
    from tests.unit.test_imports import _module_name, imports_of

    importers = sorted(
        _module_name(p)
        for p in (ROOT / "mlopsctl").rglob("*.py")
        if not _module_name(p).startswith("mlopsctl.serve")
        and any(m.startswith("mlopsctl.serve") for _line, m in imports_of(p))
    )
    assert importers == ["mlopsctl.cli.cmd_serve"]
