"""The body of ``POST /predict``: its forms, a validator generated from the signature, its schema.

Accepted forms (so that MLflow and TF-serving clients can switch without changes):
``[{...}, ...]``, ``{"records": [...]}``, ``{"instances": [...]}``,
``{"dataframe_records": [...]}`` and ``{"dataframe_split": {"columns": [...], "data": [[...]]}}``.

Each record is checked by a pydantic ``TypedDict`` built from the signature: numeric features
take finite numbers only (no strings, no booleans), categorical features one of the categories
seen in training, nullable features also ``null``; every feature is required, other keys are
ignored. The same type gives the OpenAPI schema that ``/docs`` shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, Strict, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from mlopsctl.stages.scoring import Feature, Signature

# typed as Any: both are built at run time from the signature, which a type checker cannot follow
_TYPED_DICT: Any = TypedDict
_LITERAL: Any = Literal

FORMS = ("records", "instances", "dataframe_records", "dataframe_split")


@dataclass
class BadRequest(Exception):
    """A request the server refuses; ``detail`` lists each problem with its location."""

    status: int
    message: str
    detail: list[dict[str, Any]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "detail": self.detail}


def _feature_type(feature: Feature) -> Any:
    described = _description(feature)
    if feature.kind == "numeric":
        base: Any = Annotated[float, Strict(), Field(allow_inf_nan=False, description=described)]
    elif feature.categories:
        base = Annotated[_LITERAL[tuple(feature.categories)], Field(description=described)]
    else:
        base = Annotated[str | int | float | bool, Field(description=described)]
    return base | None if feature.nullable else base


def _description(feature: Feature) -> str:
    if feature.kind == "numeric":
        text = f"numeric ({feature.dtype})"
        if feature.min is not None and feature.max is not None:
            text += f"; seen in training: {feature.min:g} to {feature.max:g}"
    else:
        text = f"categorical ({feature.dtype}); one of the categories seen in training"
    return text + ("; null if unknown" if feature.nullable else "")


class RequestSchema:
    """Validation of ``POST /predict`` bodies for one signature."""

    def __init__(self, signature: Signature) -> None:
        self.signature = signature
        # the functional form: feature names need not be identifiers ("mean radius")
        record: Any = _TYPED_DICT("Record", {f.name: _feature_type(f) for f in signature.features})
        record.__pydantic_config__ = ConfigDict(extra="ignore")
        self.record_type = record
        self.records = TypeAdapter(Annotated[list[record], Field(min_length=1)])

    def parse(self, body: bytes) -> list[dict[str, Any]]:
        """The records of *body*, validated; :class:`BadRequest` names every bad field."""
        if not body.strip():
            raise BadRequest(400, "empty body: send a JSON list of records or {'records': [...]}")
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise BadRequest(400, f"the body is not valid JSON: {exc}") from None
        where, records = self._unwrap(doc)
        try:
            valid: list[dict[str, Any]] = list(self.records.validate_python(records))
        except ValidationError as exc:
            detail = [
                {"loc": [*where, *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_input=False)
            ]
            first: dict[str, Any] = detail[0]
            raise BadRequest(422, f"{_path(first['loc'])}: {first['msg']}", detail) from None
        return valid

    def _unwrap(self, doc: Any) -> tuple[list[str | int], Any]:
        if isinstance(doc, list):
            return [], doc
        if not isinstance(doc, dict):
            raise BadRequest(
                422,
                "expected a list of records or an object with one of: " + ", ".join(FORMS),
                [{"loc": [], "msg": "wrong body type", "type": "body_type"}],
            )
        keys = [k for k in doc if k in FORMS]
        unknown = sorted(k for k in doc if k not in FORMS)
        if len(keys) != 1 or unknown:
            problem = (
                f"unknown key(s) {', '.join(repr(k) for k in unknown)}"
                if unknown
                else "exactly one of them is needed"
            )
            raise BadRequest(
                422,
                f"expected an object with exactly one of {', '.join(FORMS)}: {problem}",
                [{"loc": unknown[:1], "msg": problem, "type": "body_form"}],
            )
        key = keys[0]
        if key != "dataframe_split":
            return [key], doc[key]
        return [key, "data"], _split_records(doc[key])

    def body_schema(self) -> dict[str, Any]:
        """The JSON schema of every accepted body form, for OpenAPI (``$defs`` inside)."""
        records: dict[str, Any] = self.records.json_schema(
            ref_template="#/components/schemas/{model}"
        )
        defs = records.pop("$defs", {})
        split = {
            "type": "object",
            "required": ["columns", "data"],
            "properties": {
                "columns": {"type": "array", "items": {"type": "string"}},
                "data": {"type": "array", "minItems": 1, "items": {"type": "array"}},
                "index": {"type": "array"},
            },
        }
        forms: list[dict[str, Any]] = [records]
        for key in FORMS:
            inner = split if key == "dataframe_split" else records
            forms.append(
                {
                    "type": "object",
                    "title": key,
                    "required": [key],
                    "properties": {key: inner},
                    "additionalProperties": False,
                }
            )
        return {"anyOf": forms, "$defs": defs}


def _split_records(split: Any) -> list[dict[str, Any]]:
    """MLflow's ``dataframe_split`` (columns + rows) as records."""
    if not isinstance(split, dict):
        raise BadRequest(
            422,
            "dataframe_split: expected an object with columns and data",
            [{"loc": ["dataframe_split"], "msg": "not an object", "type": "dict_type"}],
        )
    columns, data = split.get("columns"), split.get("data")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise BadRequest(
            422,
            "dataframe_split.columns: expected a list of column names",
            [
                {
                    "loc": ["dataframe_split", "columns"],
                    "msg": "not a list of strings",
                    "type": "list_type",
                }
            ],
        )
    if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
        raise BadRequest(
            422,
            "dataframe_split.data: expected a list of rows (lists)",
            [
                {
                    "loc": ["dataframe_split", "data"],
                    "msg": "not a list of lists",
                    "type": "list_type",
                }
            ],
        )
    for i, row in enumerate(data):
        if len(row) != len(columns):
            raise BadRequest(
                422,
                f"dataframe_split.data[{i}]: {len(row)} values for {len(columns)} columns",
                [
                    {
                        "loc": ["dataframe_split", "data", i],
                        "msg": "row length",
                        "type": "row_length",
                    }
                ],
            )
    return [dict(zip(columns, row, strict=True)) for row in data]


def _path(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"
