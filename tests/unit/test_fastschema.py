"""The jsonschema-free validity check agrees with jsonschema, document for document.

``spec/fastschema.py`` lets a valid spec skip jsonschema (its import was most of a cold plan).
It must never call a document valid that jsonschema rejects: here both judge the shipped
examples and thousands of random mutations of them (dropped, retyped, inserted, renamed keys,
and values swapped for others the schema itself mentions, so that many stay valid).
"""

from __future__ import annotations

import copy
import json
import string
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlopsctl.spec import fastschema
from mlopsctl.spec.schema import SCHEMA_FILES, _validator
from mlopsctl.spec.yamlio import load_yaml

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = [
    ROOT / "tests" / "fixtures" / "spec_example",
    *sorted(p for p in (ROOT / "examples").iterdir() if (p / "mlopsctl.yaml").is_file()),
]


def _load(path: Path) -> dict[str, Any]:
    doc, diags = load_yaml(path.read_text("utf-8"), path.name)
    assert not diags and isinstance(doc.data, dict), diags
    return doc.data


USECASES = [_load(f) for p in PROJECTS for f in sorted((p / "usecases").glob("*.yaml"))]
PROJECT_FILES = [_load(p / "mlopsctl.yaml") for p in PROJECTS]


def _schema_values() -> list[Any]:
    """Every enum and const value the schemas name: mutations that often keep a spec valid."""
    found: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "enum" and isinstance(v, list):
                    found.extend(v)
                elif k == "const":
                    found.append(v)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for name in SCHEMA_FILES.values():
        walk(json.loads(resources.files("mlopsctl").joinpath("schemas", name).read_text()))
    return found


KEYS = st.one_of(
    st.sampled_from(["name", "path", "min", "max", "format", "on", "target", "dask", "x", ""]),
    st.text(string.ascii_letters + string.digits + "_-. $", min_size=0, max_size=12),
)
SCALARS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=20),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 1.0, 0.5, -1, 2, 100, True, False, "", "a", "x_1", "Churn"]),
    st.sampled_from(_schema_values()),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
    max_leaves=6,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*path, i))


def _mutate(doc: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 2), label="mutations")):
        everything = list(_paths(doc))
        inner = [p for p, _v in everything if p]
        op = data.draw(st.sampled_from(["drop", "retype", "swap", "insert", "rename"]))
        if op != "insert" and inner:
            path = data.draw(st.sampled_from(inner), label="at")
            parent = doc
            for part in path[:-1]:
                parent = parent[part]
            if op == "drop":
                del parent[path[-1]]
            elif op == "retype":
                parent[path[-1]] = data.draw(VALUES, label="value")
            elif op == "swap":
                parent[path[-1]] = data.draw(st.sampled_from(_schema_values()), label="value")
            elif isinstance(parent, dict):
                parent[data.draw(KEYS, label="new key")] = parent.pop(path[-1])
        else:
            maps = [v for _p, v in everything if isinstance(v, dict)]
            mapping = data.draw(st.sampled_from(maps), label="into")
            mapping[data.draw(KEYS, label="key")] = data.draw(VALUES, label="value")
    return doc


def _agree(data: Any, kind: str) -> None:
    expected = _validator(kind).is_valid(data)
    assert fastschema.is_valid(data, SCHEMA_FILES[kind]) is expected, data


def test_every_schema_compiles() -> None:
    """A keyword the fast check does not know would silently send every spec to jsonschema."""
    for name in SCHEMA_FILES.values():
        assert fastschema._compiled(name) is not None, name


@pytest.mark.parametrize("doc", USECASES, ids=lambda d: d["metadata"]["name"])
def test_examples_are_valid_for_both(doc: dict[str, Any]) -> None:
    assert fastschema.is_valid(doc, SCHEMA_FILES["UseCase"]) is True
    _agree(doc, "UseCase")


@pytest.mark.parametrize("doc", PROJECT_FILES)
def test_project_files_are_valid_for_both(doc: dict[str, Any]) -> None:
    _agree(doc, "Project")


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_usecases_judged_like_jsonschema(data: st.DataObject) -> None:
    _agree(_mutate(data.draw(st.sampled_from(USECASES)), data), "UseCase")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_projects_judged_like_jsonschema(data: st.DataObject) -> None:
    _agree(_mutate(data.draw(st.sampled_from(PROJECT_FILES)), data), "Project")


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (True, 1, False),
        (False, 0, False),
        (1, 1.0, True),
        ([1, True], [1.0, True], True),
        ({"a": [0]}, {"a": [False]}, False),
        ("1", 1, False),
    ],
)
def test_equality_is_json_equality(a: Any, b: Any, same: bool) -> None:
    """enum/const/uniqueItems compare as JSON does: a boolean is never a number."""
    assert fastschema.equal(a, b) is same


def test_unknown_keyword_defers_to_jsonschema() -> None:
    compiler = fastschema._Compiler({"s.json": {"format": "email"}}, "s.json")
    with pytest.raises(fastschema.Unsupported):
        compiler.compile({"format": "email"}, "s.json")
