"""The JSON Schemas of the spec: well-formed, complete, and strict where the contract says so.

Every YAML file we ship (examples, the SPEC.md fixture) must validate, and each negative case
must fail for the reason it names (keyword and key path), not merely fail.
"""

from __future__ import annotations

import copy
import csv
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "mlopsctl" / "schemas"
FIXTURE = ROOT / "tests" / "fixtures" / "spec_example"
EXAMPLES = ROOT / "examples"

METRICS = {
    "binary_classification": ["roc_auc", "accuracy", "f1", "precision", "recall", "log_loss"],
    "multiclass_classification": ["accuracy", "f1_macro", "f1_weighted", "log_loss"],
    "regression": ["rmse", "mae", "r2", "mape"],
}


# --- loading -------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """yaml.safe_load, except that mapping keys stay strings and dates stay text.

    PyYAML follows YAML 1.1, where the key ``on`` (of ``data.join``) would load as ``True``;
    mlopsctl's own loader keeps keys as written, and so does this one.
    """


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[str, Any]:
    loader.flatten_mapping(node)
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[key if isinstance(key, str) else str(key_node.value)] = loader.construct_object(
            value_node, deep=True
        )
    return out


def _construct_timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # a SafeLoader subclass


def load_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return schema


USECASE = load_schema("usecase.schema.json")
PROJECT = load_schema("project.schema.json")
REGISTRY: Registry = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in (USECASE, PROJECT)
)
USECASE_VALIDATOR = Draft202012Validator(USECASE, registry=REGISTRY)
PROJECT_VALIDATOR = Draft202012Validator(PROJECT, registry=REGISTRY)


def errors(validator: Draft202012Validator, doc: Any) -> list[tuple[str, str, str]]:
    """(dotted path, failing keyword, message) of every error."""
    return sorted(
        (
            ".".join(str(p) for p in error.absolute_path),
            str(error.validator),
            error.message,
        )
        for error in validator.iter_errors(doc)
    )


# --- the schemas themselves ----------------------------------------------------------------


@pytest.mark.parametrize("schema", [USECASE, PROJECT], ids=["usecase", "project"])
def test_schema_is_valid_draft_2020_12(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith("https://mlopsctl.dev/schemas/v1/")
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", ["usecase.schema.json", "project.schema.json"])
def test_schema_files_are_pretty_printed_with_two_spaces(name: str) -> None:
    text = (SCHEMA_DIR / name).read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"


def test_repo_root_schemas_link_points_at_the_package_schemas() -> None:
    link = ROOT / "schemas"
    assert link.is_symlink()
    for name in ("usecase.schema.json", "project.schema.json"):
        assert (link / name).read_bytes() == (SCHEMA_DIR / name).read_bytes()


def _property_schemas(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every property definition (not the if/then/else conditions that constrain them)."""
    if not isinstance(node, dict):
        return
    for key, sub in node.get("properties", {}).items():
        yield f"{path}.{key}", sub
        yield from _property_schemas(sub, f"{path}.{key}")
    for name, sub in node.get("$defs", {}).items():
        yield from _property_schemas(sub, f"$defs.{name}")
    for keyword in ("items", "additionalProperties"):
        yield from _property_schemas(node.get(keyword), f"{path}.{keyword}")
    for i, alt in enumerate(node.get("anyOf", [])):
        yield from _property_schemas(alt, f"{path}.anyOf[{i}]")


@pytest.mark.parametrize("schema", [USECASE, PROJECT], ids=["usecase", "project"])
def test_every_property_has_a_description(schema: dict[str, Any]) -> None:
    missing = [path for path, sub in _property_schemas(schema) if "description" not in sub]
    assert missing == []


@pytest.mark.parametrize("schema", [USECASE, PROJECT], ids=["usecase", "project"])
def test_every_fixed_object_rejects_unknown_keys(schema: dict[str, Any]) -> None:
    def objects(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if isinstance(node, dict):
            if "properties" in node and "type" in node:
                yield path, node
            for key, sub in node.items():
                if key not in ("if", "then", "else"):
                    yield from objects(sub, f"{path}/{key}")

    open_objects = [p for p, n in objects(schema, "") if n.get("additionalProperties") is not False]
    assert open_objects == []


def test_forbidden_keys_carry_a_reason() -> None:
    """Keys forbidden in a context use ``not: {}`` with a description, never a bare ``false``
    (jsonschema reports ``false`` at the parent's path and without the key's name)."""

    def walk(node: Any) -> Iterator[Any]:
        if isinstance(node, dict):
            yield node
            for sub in node.values():
                yield from walk(sub)
        elif isinstance(node, list):
            for sub in node:
                yield from walk(sub)

    nodes = list(walk(USECASE)) + list(walk(PROJECT))
    assert not [n for n in nodes if "properties" in n and False in n["properties"].values()]
    forbidding = [n for n in nodes if n.get("not") == {}]
    assert forbidding and all(n.get("description") for n in forbidding)


def test_forbidden_key_error_names_the_key_and_the_reason() -> None:
    doc = doc_with(("data.sources.customers.query", "SELECT 1"))
    (error,) = USECASE_VALIDATOR.iter_errors(doc)
    assert list(error.absolute_path) == ["data", "sources", "customers", "query"]
    assert error.validator == "not"
    assert error.schema["description"] == "`query` is only for `format: sql`."


def test_metric_name_is_the_union_of_the_per_problem_metrics() -> None:
    union = {m for names in METRICS.values() for m in names}
    assert set(USECASE["$defs"]["metricName"]["enum"]) == union


def test_project_schema_documents_the_shared_registry() -> None:
    assert PROJECT["properties"]["defaults"]["properties"]["infra"]["$ref"] == (
        "usecase.schema.json#/$defs/infra"
    )
    assert "registry" in PROJECT["$comment"]


# --- everything we ship validates ----------------------------------------------------------

USECASE_FILES = [*sorted(EXAMPLES.glob("*/usecases/*.yaml")), FIXTURE / "usecases/churn.yaml"]
PROJECT_FILES = [*sorted(EXAMPLES.glob("*/mlopsctl.yaml")), FIXTURE / "mlopsctl.yaml"]


def test_the_shipped_files_are_all_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in USECASE_FILES + PROJECT_FILES}
    assert {
        "examples/breast-cancer/usecases/breast-cancer.yaml",
        "examples/house-prices/usecases/house-prices.yaml",
        "examples/breast-cancer/mlopsctl.yaml",
        "examples/house-prices/mlopsctl.yaml",
        "tests/fixtures/spec_example/usecases/churn.yaml",
        "tests/fixtures/spec_example/mlopsctl.yaml",
    } <= names


@pytest.mark.parametrize("path", USECASE_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shipped_usecase_validates(path: Path) -> None:
    assert errors(USECASE_VALIDATOR, load_yaml(path)) == []


@pytest.mark.parametrize("path", PROJECT_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shipped_project_validates(path: Path) -> None:
    assert errors(PROJECT_VALIDATOR, load_yaml(path)) == []


@pytest.mark.parametrize("path", USECASE_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shipped_usecase_points_editors_at_the_schema(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")


def test_spec_fixture_is_the_spec_example_verbatim() -> None:
    candidates = (ROOT / "SPEC.md", ROOT / "docs" / "SPEC.md", ROOT.parent / "shared" / "SPEC.md")
    spec = next((p for p in candidates if p.exists()), None)
    if spec is None:
        pytest.skip("SPEC.md (the product contract) is not available here")
    text = (FIXTURE / "usecases" / "churn.yaml").read_text(encoding="utf-8")
    assert f"```yaml\n{text}```" in spec.read_text(encoding="utf-8")


# --- negative cases ------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "apiVersion": "mlopsctl/v1",
    "kind": "UseCase",
    "metadata": {"name": "churn"},
    "goal": {
        "problem": "binary_classification",
        "target": "churned",
        "metrics": {"roc_auc": {"min": 0.8}},
        "primary_metric": "roc_auc",
    },
    "data": {"sources": {"customers": {"format": "csv", "path": "data/customers.csv"}}},
    "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
}
REGRESSION_GOAL = {"problem": "regression", "target": "y", "metrics": {"r2": {"min": 0.5}}}


def doc_with(*edits: tuple[str, Any]) -> dict[str, Any]:
    """BASE with each dotted path set to a value (or removed, for the value ``DELETE``)."""
    doc = copy.deepcopy(BASE)
    for path, value in edits:
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return doc


DELETE = object()

NEGATIVE: dict[str, tuple[dict[str, Any], str, str, str]] = {
    # case id: (document, path of the error, failing keyword, text in the message)
    "unknown top-level key": (doc_with(("modle", {})), "", "additionalProperties", "'modle'"),
    "unknown nested key": (
        doc_with(("data.split", {"sed": 1})),
        "data.split",
        "additionalProperties",
        "'sed'",
    ),
    "wrong type": (doc_with(("model.params", [1, 2])), "model.params", "type", "'object'"),
    "missing section": (doc_with(("goal", DELETE)), "", "required", "'goal'"),
    "wrong apiVersion": (doc_with(("apiVersion", "mlopsctl/v2")), "apiVersion", "const", ""),
    "wrong kind": (doc_with(("kind", "Project")), "kind", "const", "'UseCase'"),
    "bad use case name": (
        doc_with(("metadata.name", "Churn_Model")),
        "metadata.name",
        "pattern",
        "does not match",
    ),
    "label value not a string": (
        doc_with(("metadata.labels", {"tier": 1})),
        "metadata.labels.tier",
        "type",
        "'string'",
    ),
    "empty metric bound": (
        doc_with(("goal.metrics", {"roc_auc": {}})),
        "goal.metrics.roc_auc",
        "minProperties",
        "",
    ),
    "unknown bound key": (
        doc_with(("goal.metrics", {"roc_auc": {"minimum": 0.8}})),
        "goal.metrics.roc_auc",
        "additionalProperties",
        "'minimum'",
    ),
    "no metrics": (doc_with(("goal.metrics", {})), "goal.metrics", "minProperties", ""),
    "classification metric in regression": (
        doc_with(("goal", {**REGRESSION_GOAL, "metrics": {"roc_auc": {"min": 0.8}}})),
        "goal.metrics",
        "enum",
        "'roc_auc' is not one of",
    ),
    "binary metric in multiclass": (
        doc_with(("goal.problem", "multiclass_classification"), ("goal.primary_metric", DELETE)),
        "goal.metrics",
        "enum",
        "'roc_auc' is not one of",
    ),
    "primary metric not valid for problem": (
        doc_with(("goal", {**REGRESSION_GOAL, "primary_metric": "roc_auc"})),
        "goal.primary_metric",
        "enum",
        "'roc_auc' is not one of",
    ),
    "performance metric not valid for problem": (
        doc_with(
            ("goal", REGRESSION_GOAL),
            ("monitoring", {"current": {"format": "csv", "path": "c.csv"}}),
            ("monitoring.performance", {"f1": {"min": 0.5}}),
        ),
        "monitoring.performance",
        "enum",
        "'f1' is not one of",
    ),
    "unknown metric": (
        doc_with(("goal.metrics", {"auc": {"min": 0.8}}), ("goal.primary_metric", DELETE)),
        "goal.metrics",
        "enum",
        "'auc' is not one of",
    ),
    "stratified split in regression": (
        doc_with(("goal", REGRESSION_GOAL), ("data.split", {"stratify": True})),
        "data.split.stratify",
        "const",
        "",
    ),
    "test_size 1.0": (
        doc_with(("data.split", {"test_size": 1.0})),
        "data.split.test_size",
        "exclusiveMaximum",
        "",
    ),
    "split time without column": (
        doc_with(("data.split", {"method": "time", "cutoff": "2025-01-01"})),
        "data.split",
        "required",
        "'column'",
    ),
    "split time with test_size": (
        doc_with(
            ("data.split", {"method": "time", "column": "d", "cutoff": "2025-01-01"}),
            ("data.split.test_size", 0.3),
        ),
        "data.split.test_size",
        "not",
        "should not be valid",
    ),
    "cutoff not ISO 8601": (
        doc_with(("data.split", {"method": "time", "column": "d", "cutoff": "01/01/2025"})),
        "data.split.cutoff",
        "pattern",
        "",
    ),
    "cutoff with random split": (
        doc_with(("data.split", {"cutoff": "2025-01-01"})),
        "data.split.cutoff",
        "not",
        "should not be valid",
    ),
    "no sources": (doc_with(("data.sources", {})), "data.sources", "minProperties", ""),
    "bad source name": (
        doc_with(("data.sources", {"my customers": {"format": "sklearn", "name": "iris"}})),
        "data.sources",
        "pattern",
        "'my customers'",
    ),
    "unknown source format": (
        doc_with(("data.sources.customers.format", "excel")),
        "data.sources.customers.format",
        "enum",
        "",
    ),
    "csv source without path": (
        doc_with(("data.sources.customers", {"format": "csv"})),
        "data.sources.customers",
        "required",
        "'path'",
    ),
    "sql source without query": (
        doc_with(("data.sources.customers", {"format": "sql", "url": "${env:DB_URL}"})),
        "data.sources.customers",
        "required",
        "'query'",
    ),
    "csv source with a query": (
        doc_with(("data.sources.customers.query", "SELECT 1")),
        "data.sources.customers.query",
        "not",
        "should not be valid",
    ),
    "unknown bundled data set": (
        doc_with(("data.sources.customers", {"format": "sklearn", "name": "titanic"})),
        "data.sources.customers.name",
        "enum",
        "",
    ),
    "join on empty list": (
        doc_with(("data.join", [{"left": "a", "right": "b", "on": []}])),
        "data.join.0.on",
        "minItems",
        "",
    ),
    "join on a number": (
        doc_with(("data.join", [{"left": "a", "right": "b", "on": 5}])),
        "data.join.0.on",
        "type",
        "",
    ),
    "join on empty string": (
        doc_with(("data.join", [{"left": "a", "right": "b", "on": ""}])),
        "data.join.0.on",
        "minLength",
        "",
    ),
    "join how outer": (
        doc_with(("data.join", [{"left": "a", "right": "b", "on": "k", "how": "outer"}])),
        "data.join.0.how",
        "enum",
        "",
    ),
    "duplicate feature": (
        doc_with(("data.features", {"numeric": ["age", "age"]})),
        "data.features.numeric",
        "uniqueItems",
        "",
    ),
    "max_missing above 1": (
        doc_with(("data.checks", {"max_missing": 1.5})),
        "data.checks.max_missing",
        "maximum",
        "",
    ),
    "empty allowed set": (
        doc_with(("data.checks", {"allowed": {"contract": []}})),
        "data.checks.allowed.contract",
        "minItems",
        "",
    ),
    "estimator without module": (
        doc_with(("model.estimator", "LogisticRegression")),
        "model.estimator",
        "pattern",
        "",
    ),
    "bad preprocessing value": (
        doc_with(("model.preprocessing", {"numeric": "zscore"})),
        "model.preprocessing.numeric",
        "enum",
        "",
    ),
    "tuning without params": (
        doc_with(("model.tuning", {"method": "grid", "cv": 5})),
        "model.tuning",
        "required",
        "'params'",
    ),
    "tuning cv 1": (
        doc_with(("model.tuning", {"method": "grid", "cv": 1, "params": {"C": [1]}})),
        "model.tuning.cv",
        "minimum",
        "",
    ),
    "tuning n_iter with grid": (
        doc_with(("model.tuning", {"method": "grid", "n_iter": 5, "params": {"C": [1]}})),
        "model.tuning.n_iter",
        "not",
        "should not be valid",
    ),
    "tuning param without candidates": (
        doc_with(("model.tuning", {"method": "random", "params": {"C": []}})),
        "model.tuning.params.C",
        "minItems",
        "",
    ),
    "executor dask without dask": (
        doc_with(("infra", {"executor": "dask"})),
        "infra",
        "required",
        "'dask'",
    ),
    "executor dask without scheduler": (
        doc_with(("infra", {"executor": "dask", "dask": {"n_workers": 2}})),
        "infra.dask",
        "required",
        "'scheduler'",
    ),
    "n_jobs 0": (doc_with(("infra", {"n_jobs": 0})), "infra.n_jobs", "not", ""),
    "n_jobs -2": (doc_with(("infra", {"n_jobs": -2})), "infra.n_jobs", "minimum", ""),
    "unknown deploy target": (
        doc_with(("deploy", {"target": "kubernetes"})),
        "deploy.target",
        "enum",
        "",
    ),
    "target batch without batch": (
        doc_with(("deploy", {"target": "batch"})),
        "deploy",
        "required",
        "'batch'",
    ),
    "batch without output": (
        doc_with(
            ("deploy", {"target": "batch", "batch": {"input": {"format": "csv", "path": "x"}}})
        ),
        "deploy.batch",
        "required",
        "'output'",
    ),
    "port 70000": (
        doc_with(("deploy", {"rest": {"port": 70000}})),
        "deploy.rest.port",
        "maximum",
        "",
    ),
    "port as text": (
        doc_with(("deploy", {"rest": {"port": "8080"}})),
        "deploy.rest.port",
        "type",
        "'integer'",
    ),
    "monitoring without current": (
        doc_with(("monitoring", {"drift": {"method": "psi"}})),
        "monitoring",
        "required",
        "'current'",
    ),
    "drift threshold 0": (
        doc_with(
            ("monitoring", {"current": {"format": "csv", "path": "c.csv"}}),
            ("monitoring.drift", {"threshold": 0}),
        ),
        "monitoring.drift.threshold",
        "exclusiveMinimum",
        "",
    ),
    "on_breach bad value": (
        doc_with(
            ("monitoring", {"current": {"format": "csv", "path": "c.csv"}, "on_breach": "page"})
        ),
        "monitoring.on_breach",
        "enum",
        "'page'",
    ),
    "stages item without cmd": (
        doc_with(("stages", [{"name": "featurize"}])),
        "stages.0",
        "required",
        "'cmd'",
    ),
    "stage with empty cmd": (
        doc_with(("stages", [{"name": "featurize", "cmd": ""}])),
        "stages.0.cmd",
        "minLength",
        "",
    ),
    "stage with bad name": (
        doc_with(("stages", [{"name": "Featurize Step", "cmd": "true"}])),
        "stages.0.name",
        "pattern",
        "",
    ),
    "stage with unknown key": (
        doc_with(("stages", [{"name": "f", "cmd": "true", "after": "train"}])),
        "stages.0",
        "additionalProperties",
        "'after'",
    ),
}


@pytest.mark.parametrize(("doc", "path", "keyword", "text"), NEGATIVE.values(), ids=NEGATIVE)
def test_invalid_usecase_fails_for_the_right_reason(
    doc: dict[str, Any], path: str, keyword: str, text: str
) -> None:
    found = errors(USECASE_VALIDATOR, doc)
    matches = [e for e in found if e[0] == path and e[1] == keyword and text in e[2]]
    assert matches, f"expected {keyword!r} at {path!r}, got {found}"


def test_base_document_of_the_negative_cases_is_valid() -> None:
    assert errors(USECASE_VALIDATOR, BASE) == []


POSITIVE: dict[str, dict[str, Any]] = {
    "time split": doc_with(
        ("data.split", {"method": "time", "column": "signup_date", "cutoff": "2025-01-01"})
    ),
    "datetime cutoff": doc_with(
        ("data.split", {"method": "time", "column": "ts", "cutoff": "2025-01-01T06:30:00+02:00"})
    ),
    "sql source with env url": doc_with(
        (
            "data.sources.loans",
            {"format": "sql", "url": "${env:LOANS_DB_URL}", "query": "SELECT 1"},
        ),
        ("data.join", [{"left": "customers", "right": "loans", "on": ["id", "date"]}]),
    ),
    "parquet source": doc_with(("data.sources.customers.format", "parquet")),
    "multiclass": doc_with(
        ("goal.problem", "multiclass_classification"),
        ("goal.metrics", {"f1_macro": {"min": 0.7}, "log_loss": {"max": 0.5}}),
        ("goal.primary_metric", "f1_macro"),
    ),
    "regression bounds both ends": doc_with(
        ("goal", {**REGRESSION_GOAL, "metrics": {"rmse": {"min": 0, "max": 12.5}}})
    ),
    "random tuning with n_iter": doc_with(
        ("model.tuning", {"method": "random", "n_iter": 20, "params": {"C": [0.1, 1, 10]}})
    ),
    "dask executor": doc_with(
        ("infra", {"executor": "dask", "dask": {"scheduler": "tcp://s:8786"}, "n_jobs": -1})
    ),
    "dask executor staging through an fsspec URL": doc_with(
        (
            "infra",
            {
                "executor": "dask",
                "dask": {"scheduler": "tcp://s:8786", "storage": "s3://bucket/${env:PREFIX}"},
            },
        )
    ),
    "batch deploy": doc_with(
        (
            "deploy",
            {
                "target": "batch",
                "batch": {
                    "input": {"format": "csv", "path": "data/to_score.csv"},
                    "output": "artifacts/churn/predictions.csv",
                },
            },
        )
    ),
    "rest deploy with defaults": doc_with(("deploy", {"target": "rest"})),
    "full monitoring": doc_with(
        (
            "monitoring",
            {
                "current": {"format": "parquet", "path": "data/current.parquet"},
                "drift": {"method": "ks", "threshold": 0.1, "features": ["age"]},
                "data_quality": {"max_missing": 0.1},
                "performance": {"roc_auc": {"min": 0.75}},
                "on_breach": "fail",
                "retrain_with_current": True,
            },
        )
    ),
    "stage before another custom stage": doc_with(
        (
            "stages",
            [
                {"name": "fetch", "cmd": "python fetch.py", "outs": ["raw.csv"]},
                {"name": "clean", "cmd": "python clean.py", "metrics": ["m.json"], "before": "x"},
            ],
        )
    ),
    "allowed values of several types": doc_with(
        ("data.checks", {"allowed": {"flag": [True, False], "code": [1, 2.5, "n/a"]}})
    ),
}


@pytest.mark.parametrize("doc", POSITIVE.values(), ids=POSITIVE)
def test_valid_variants(doc: dict[str, Any]) -> None:
    assert errors(USECASE_VALIDATOR, doc) == []


# --- the project schema, with its $ref into the use-case schema ----------------------------

PROJECT_BASE: dict[str, Any] = {"apiVersion": "mlopsctl/v1", "kind": "Project"}

PROJECT_NEGATIVE: dict[str, tuple[dict[str, Any], str, str, str]] = {
    "wrong kind": ({**PROJECT_BASE, "kind": "UseCase"}, "kind", "const", "'Project'"),
    "missing apiVersion": ({"kind": "Project"}, "", "required", "'apiVersion'"),
    "unknown key": ({**PROJECT_BASE, "remotes": ["s3"]}, "", "additionalProperties", "'remotes'"),
    "commit not a boolean": ({**PROJECT_BASE, "commit": "yes"}, "commit", "type", "'boolean'"),
    "no use-case globs": ({**PROJECT_BASE, "usecases": []}, "usecases", "minItems", ""),
    "unknown defaults key": (
        {**PROJECT_BASE, "defaults": {"model": {}}},
        "defaults",
        "additionalProperties",
        "'model'",
    ),
    "defaults.infra via $ref: dask without scheduler": (
        {**PROJECT_BASE, "defaults": {"infra": {"executor": "dask", "dask": {}}}},
        "defaults.infra.dask",
        "required",
        "'scheduler'",
    ),
    "defaults.infra via $ref: unknown key": (
        {**PROJECT_BASE, "defaults": {"infra": {"executer": "local"}}},
        "defaults.infra",
        "additionalProperties",
        "'executer'",
    ),
    "empty estimator allow-list": (
        {**PROJECT_BASE, "allowed_estimator_modules": []},
        "allowed_estimator_modules",
        "minItems",
        "",
    ),
}


@pytest.mark.parametrize(
    ("doc", "path", "keyword", "text"), PROJECT_NEGATIVE.values(), ids=PROJECT_NEGATIVE
)
def test_invalid_project_fails_for_the_right_reason(
    doc: dict[str, Any], path: str, keyword: str, text: str
) -> None:
    found = errors(PROJECT_VALIDATOR, doc)
    assert [e for e in found if e[0] == path and e[1] == keyword and text in e[2]], found


def test_project_ref_resolves_only_with_both_schemas_registered() -> None:
    doc = {**PROJECT_BASE, "defaults": {"infra": {"executor": "local", "n_jobs": 2}}}
    assert errors(PROJECT_VALIDATOR, doc) == []
    alone = Draft202012Validator(
        PROJECT, registry=Registry().with_resource(PROJECT["$id"], Resource.from_contents(PROJECT))
    )
    with pytest.raises(Exception, match=r"usecase\.schema\.json"):
        list(alone.iter_errors(doc))


# --- the data shipped with the examples agrees with their specs -----------------------------


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_gen_{path.parent.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _feature_columns(usecase: dict[str, Any]) -> set[str]:
    features = usecase["data"]["features"]
    return {c for key in ("numeric", "categorical", "drop") for c in features.get(key, [])}


def _assert_checks_hold(usecase: dict[str, Any], rows: list[dict[str, str]]) -> None:
    checks = usecase["data"]["checks"]
    assert len(rows) >= checks["min_rows"]
    for column in rows[0]:
        missing = sum(1 for row in rows if row[column] == "") / len(rows)
        assert missing <= checks["max_missing"], column
    for column in checks.get("unique", []):
        assert len({row[column] for row in rows}) == len(rows), column
    for column, bound in checks.get("ranges", {}).items():
        values = [float(row[column]) for row in rows if row[column] != ""]
        assert bound.get("min", min(values)) <= min(values), column
        assert max(values) <= bound.get("max", max(values)), column
    for column, allowed in checks.get("allowed", {}).items():
        assert {row[column] for row in rows} <= {str(v) for v in allowed}, column


def test_house_prices_data_matches_its_use_case() -> None:
    example = EXAMPLES / "house-prices"
    usecase = load_yaml(example / "usecases" / "house-prices.yaml")
    header, rows = _csv(example / "data" / "houses.csv")
    assert set(header) == _feature_columns(usecase) | {usecase["goal"]["target"]}
    _assert_checks_hold(usecase, rows)


def test_house_prices_data_is_reproducible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = EXAMPLES / "house-prices"
    module = _import(example / "make_data.py")
    monkeypatch.setattr(module, "OUTPUT", tmp_path / "houses.csv")
    module.main()
    committed = (example / "data" / "houses.csv").read_bytes()
    assert (tmp_path / "houses.csv").read_bytes() == committed
    assert b"\r\n" not in committed


def test_spec_fixture_data_matches_the_spec() -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    usecase = load_yaml(FIXTURE / "usecases" / "churn.yaml")
    header, rows = _csv(FIXTURE / "data" / "customers.csv")
    current_header, current_rows = _csv(FIXTURE / "data" / "current.csv")
    regions = pq.read_table(FIXTURE / "data" / "regions.parquet")
    join_keys = {usecase["data"]["join"][0]["on"]}
    assert regions.column_names == ["region_id"]
    joined = set(header) | set(regions.column_names)
    assert joined == _feature_columns(usecase) | join_keys | {usecase["goal"]["target"]}
    assert current_header == header
    assert len(rows) >= 600 and len(current_rows) > 0
    _assert_checks_hold(usecase, rows)
    assert {row["churned"] for row in rows} == {"0", "1"}


def test_spec_fixture_data_is_reproducible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    module = _import(FIXTURE / "make_data.py")
    monkeypatch.setattr(module, "DATA", tmp_path)
    monkeypatch.setattr(module, "HERE", tmp_path.parent)
    module.main()
    for name in ("customers.csv", "current.csv"):
        assert (tmp_path / name).read_bytes() == (FIXTURE / "data" / name).read_bytes(), name
    # Parquet bytes embed the writer's version; compare the content instead.
    fresh = pq.read_table(tmp_path / "regions.parquet")
    assert fresh.equals(pq.read_table(FIXTURE / "data" / "regions.parquet"))


def test_spec_fixture_featurize_stage_runs(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "data").mkdir()
    script = (FIXTURE / "src" / "featurize.py").read_text(encoding="utf-8")
    (tmp_path / "src" / "featurize.py").write_text(script, encoding="utf-8")
    source = (FIXTURE / "data" / "customers.csv").read_bytes()
    (tmp_path / "data" / "customers.csv").write_bytes(source)
    module = _import(tmp_path / "src" / "featurize.py")
    assert module.main() == 0
    header, rows = _csv(tmp_path / "data" / "features.csv")
    assert header[0] == "customer_id"
    assert len(rows) == len(_csv(FIXTURE / "data" / "customers.csv")[1])
