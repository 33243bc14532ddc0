"""The JSON Schemas and the dataclasses of mlopsctl/spec/model.py describe the same keys.

Key paths are tuples of YAML keys; ``*`` stands for the keys of a free map (``additionalProperties``
with a schema <-> a ``Mapping[str, X]`` field) and ``[]`` for the items of a list of mappings
(``items`` <-> a ``tuple[X, ...]`` field).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from mlopsctl.spec.model import ProjectConfig, UseCase, yaml_key

SCHEMAS = Path(__file__).resolve().parents[2] / "mlopsctl" / "schemas"
KeyPath = tuple[str, ...]


def _schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMAS / name).read_text("utf-8"))
    return data


def _deref(node: Any, current: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Follow ``$ref`` within a schema file or to a sibling file; returns (node, its file)."""
    while isinstance(node, Mapping) and "$ref" in node:
        target, _, pointer = str(node["$ref"]).partition("#")
        doc = _schema(target.rsplit("/", 1)[-1]) if target else current
        current = doc
        node = doc
        for part in (p for p in pointer.split("/") if p):
            node = node[part]
    return node, current


def schema_paths(node: Any, doc: dict[str, Any], prefix: KeyPath = ()) -> Iterator[KeyPath]:
    node, doc = _deref(node, doc)
    if not isinstance(node, Mapping):
        return
    for name, sub in (node.get("properties") or {}).items():
        yield (*prefix, name)
        yield from schema_paths(sub, doc, (*prefix, name))
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping):
        yield (*prefix, "*")
        yield from schema_paths(extra, doc, (*prefix, "*"))
    items = node.get("items")
    if isinstance(items, Mapping):
        yield from schema_paths(items, doc, (*prefix, "[]"))
    for rule in node.get("allOf") or []:
        for branch in ("if", "then", "else"):
            if branch in rule:
                yield from schema_paths(rule[branch], doc, prefix)


def _unwrap(tp: Any) -> Any:
    """``X | None`` -> ``X``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def model_paths(cls: type, prefix: KeyPath = ()) -> Iterator[KeyPath]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = (*prefix, yaml_key(f))
        yield path
        yield from _type_paths(_unwrap(hints[f.name]), path)


def _type_paths(tp: Any, path: KeyPath) -> Iterator[KeyPath]:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        yield from model_paths(tp, path)
    elif origin is tuple:
        item = typing.get_args(tp)[0]
        if dataclasses.is_dataclass(item) and isinstance(item, type):
            yield from model_paths(item, (*path, "[]"))
    elif origin in (Mapping, dict):
        value_type = _unwrap(typing.get_args(tp)[1])
        yield (*path, "*")
        yield from _type_paths(value_type, (*path, "*"))


def _diff(schema: set[KeyPath], model: set[KeyPath]) -> str:
    only_schema = sorted(".".join(p) for p in schema - model)
    only_model = sorted(".".join(p) for p in model - schema)
    return (
        "\nonly in the schema:\n  "
        + "\n  ".join(only_schema or ["-"])
        + "\nonly in the dataclasses:\n  "
        + "\n  ".join(only_model or ["-"])
    )


@pytest.mark.parametrize(
    ("schema_file", "cls"),
    [("usecase.schema.json", UseCase), ("project.schema.json", ProjectConfig)],
    ids=["UseCase", "ProjectConfig"],
)
def test_schema_and_dataclasses_have_the_same_keys(schema_file: str, cls: type) -> None:
    doc = _schema(schema_file)
    schema = set(schema_paths(doc, doc))
    model = set(model_paths(cls))
    assert schema == model, _diff(schema, model)


def test_the_walk_sees_nested_and_conditional_keys() -> None:
    doc = _schema("usecase.schema.json")
    paths = set(schema_paths(doc, doc))
    for expected in [
        ("apiVersion",),
        ("goal", "metrics", "*", "min"),
        ("data", "sources", "*", "format"),
        ("data", "join", "[]", "on"),
        ("data", "split", "cutoff"),
        ("data", "checks", "allowed", "*"),
        ("infra", "dask", "scheduler"),
        ("deploy", "batch", "input", "path"),
        ("model", "params", "*"),
        ("stages", "[]", "before"),
    ]:
        assert expected in paths
    project = _schema("project.schema.json")
    assert ("defaults", "infra", "dask", "n_workers") in set(schema_paths(project, project))


def test_the_comparison_notices_a_missing_field() -> None:
    @dataclasses.dataclass(frozen=True)
    class Partial:
        api_version: str = dataclasses.field(metadata={"key": "apiVersion"})
        kind: str = "Project"

    doc = _schema("project.schema.json")
    schema, model = set(schema_paths(doc, doc)), set(model_paths(Partial))
    assert schema != model
    assert "defaults.infra.executor" in _diff(schema, model)
