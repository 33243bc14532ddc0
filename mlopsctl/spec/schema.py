"""JSON-Schema validation with errors mapped back to YAML locations.

The schemas in ``mlopsctl/schemas/`` are the source of truth for what a spec may contain.
jsonschema's raw messages are rewritten into one line a user can act on, located at the key
(or value) that is wrong, with a "did you mean" hint where one helps.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlopsctl.errors import Diagnostic, did_you_mean
from mlopsctl.spec.document import YamlDocument

SCHEMA_FILES = {"UseCase": "usecase.schema.json", "Project": "project.schema.json"}
_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


@functools.cache
def load_schema(filename: str) -> dict[str, Any]:
    # read beside the package (importlib.resources costs ~5 ms of imports on a cold plan);
    # a cached spec needs no schema file
    text = (Path(__file__).resolve().parent.parent / "schemas" / filename).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator(kind: str) -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    registry: Registry[Any] = Registry()
    for filename in SCHEMA_FILES.values():
        schema = load_schema(filename)
        resource = Resource.from_contents(schema)
        registry = registry.with_resources([(schema["$id"], resource), (filename, resource)])
    return Draft202012Validator(load_schema(SCHEMA_FILES[kind]), registry=registry)


def validate_against_schema(doc: YamlDocument, kind: str) -> list[Diagnostic]:
    """Every schema violation of *doc* (a UseCase or Project document), located."""
    from mlopsctl.spec.fastschema import is_valid

    # a valid document (the usual case) is told apart without importing jsonschema
    if is_valid(doc.data, SCHEMA_FILES[kind]):
        return []
    validator = _validator(kind)
    root = load_schema(SCHEMA_FILES[kind])
    ranked: set[tuple[Diagnostic, int]] = set()
    for error in validator.iter_errors(doc.data):
        # a rule under if/then (e.g. the metrics of this problem) says more than the general one
        rank = 0 if "then" in list(error.schema_path) else 1
        ranked.update((d, rank) for d in _diagnose(doc, error, root))
    return _drop_redundant(sorted(ranked, key=lambda dr: (dr[0].path, dr[0].line, dr[1], dr[0])))


def _drop_redundant(ranked: list[tuple[Diagnostic, int]]) -> list[Diagnostic]:
    # An unknown key also fails e.g. propertyNames/then checks at the same spot: keep one message,
    # the first of each spot in *ranked* order. Missing keys are distinct problems at one spot
    # (the mapping that lacks them): keep each.
    seen: set[tuple[str, int, int, str]] = set()
    out = []
    for d, _rank in ranked:
        missing = d.message if d.message.startswith("missing required key") else ""
        key = (d.path, d.line, d.column, missing)
        if key in seen:
            continue
        seen.add(key)
        out.append(d)
    return sorted(out)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML: ``true``, ``null``, ``'text'``, ``3``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"'{value}'"
    return str(value)


def _hint(error: Any, root: Mapping[str, Any]) -> str:
    """Why a conditional rule applies: its description, else the condition it is under."""
    because = _because_text(error, root)
    if not because:
        return ""
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    return str(schema.get("description", "")) or f"when {because}"


def _consts(
    schema: Mapping[str, Any], prefix: tuple[str, ...]
) -> list[tuple[tuple[str, ...], Any]]:
    out: list[tuple[tuple[str, ...], Any]] = []
    for name, sub in (schema.get("properties") or {}).items():
        if not isinstance(sub, Mapping):
            continue
        if "const" in sub:
            out.append(((*prefix, name), sub["const"]))
        elif "enum" in sub and len(sub["enum"]) <= 3:
            out.append(((*prefix, name), " or ".join(map(str, sub["enum"]))))
        else:
            out.extend(_consts(sub, (*prefix, name)))
    return out


def _diagnose(doc: YamlDocument, error: Any, root: Mapping[str, Any]) -> list[Diagnostic]:
    path = list(error.absolute_path)
    kind = error.validator
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    instance = error.instance
    in_property_names = "propertyNames" in list(error.relative_schema_path)

    if kind == "additionalProperties" and isinstance(instance, Mapping):
        known = list((schema.get("properties") or {}).keys())
        patterns = list((schema.get("patternProperties") or {}).keys())
        out = []
        for key in instance:
            if key in known or any(re.search(p, str(key)) for p in patterns):
                continue
            hint = did_you_mean(str(key), known)
            if not hint and known:
                hint = "expected one of: " + ", ".join(known)
            out.append(doc.diagnostic([*path, key], f"unknown key '{key}'", hint=hint, key=True))
        if out:
            return out
        # additionalProperties with a schema: the value failed; reported by its own error
        return []
    if in_property_names:
        # propertyNames errors carry the offending key as their instance; locate at that key.
        key = str(instance)
        allowed = schema.get("enum")
        if allowed is not None:
            message = (
                f"'{key}' is not allowed here; expected one of: {', '.join(map(str, allowed))}"
            )
            because = _because_text(error, root)
            if because:
                message = f"'{key}' is not valid when {because}; expected one of: " + ", ".join(
                    map(str, allowed)
                )
            return [
                doc.diagnostic(
                    [*path, key], message, hint=did_you_mean(key, map(str, allowed)), key=True
                )
            ]
        return [doc.diagnostic([*path, key], f"invalid key '{key}': {error.message}", key=True)]
    if kind == "required":
        missing = [
            r for r in error.validator_value if isinstance(instance, Mapping) and r not in instance
        ]
        because = _because_text(error, root)
        suffix = f" (required when {because})" if because else ""
        return [doc.diagnostic(path, f"missing required key '{m}'{suffix}") for m in missing]
    if kind == "type":
        expected = error.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        want = " or ".join(_TYPE_NAMES.get(n, n) for n in names)
        return [doc.diagnostic(path, f"expected {want}, got {_type_name(instance)}")]
    if kind == "enum":
        allowed = [str(v) for v in error.validator_value]
        because = _because_text(error, root)
        cond = f" when {because}" if because else ""
        return [
            doc.diagnostic(
                path,
                f"{_show(instance)} is not allowed{cond}; expected one of: {', '.join(allowed)}",
                hint=did_you_mean(str(instance), allowed),
            )
        ]
    if kind == "const":
        want, got = _show(error.validator_value), _show(instance)
        return [doc.diagnostic(path, f"expected {want}, got {got}", hint=_hint(error, root))]
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[
            kind
        ]
        return [doc.diagnostic(path, f"must be {op} {error.validator_value}, got {instance}")]
    if kind == "pattern":
        desc = schema.get("description", "")
        return [
            doc.diagnostic(
                path,
                f"'{instance}' does not match the pattern {error.validator_value}",
                hint=desc.split(".")[0] if desc else "",
            )
        ]
    if kind in ("minProperties", "minItems", "minLength"):
        what = {"minProperties": "entry", "minItems": "item", "minLength": "character"}[kind]
        n = error.validator_value
        return [doc.diagnostic(path, f"needs at least {n} {what}{'s' if n != 1 else ''}")]
    if kind == "uniqueItems":
        return [doc.diagnostic(path, "items must be unique")]
    if kind == "not":
        forbidden = error.validator_value
        desc = schema.get("description", "")
        if forbidden == {} or forbidden is True:
            return [doc.diagnostic(path, "key not allowed here", hint=desc, key=True)]
        if isinstance(forbidden, Mapping) and "const" in forbidden:
            return [doc.diagnostic(path, f"must not be {forbidden['const']!r}", hint=desc)]
        return [doc.diagnostic(path, "value not allowed here", hint=desc)]
    if kind in ("anyOf", "oneOf"):
        from jsonschema.exceptions import best_match

        best = best_match(error.context) if error.context else None
        if best is not None:
            return _diagnose(doc, best, root)
    return [doc.diagnostic(path, error.message)]


def _because_text(error: Any, root: Mapping[str, Any]) -> str:
    """'executor is dask' for an error raised under ``if: {executor: dask} then: ...``."""
    schema_path = list(error.schema_path)
    if "then" not in schema_path:
        return ""
    idx = len(schema_path) - 1 - schema_path[::-1].index("then")
    node: Any = root
    try:
        for part in schema_path[:idx]:
            node = _deref(node, root)[part]
        node = _deref(node, root)
    except (KeyError, IndexError, TypeError):
        return ""
    if not isinstance(node, Mapping) or "if" not in node:
        return ""
    conds = _consts(_deref(node["if"], root), ())
    return " and ".join(f"{'.'.join(p)} is {v}" for p, v in conds)


def _deref(node: Any, root: Mapping[str, Any]) -> Any:
    """Follow ``$ref`` (same file or a sibling schema file) so schema paths can be walked."""
    while isinstance(node, Mapping) and "$ref" in node:
        ref = str(node["$ref"])
        target, _, pointer = ref.partition("#")
        doc: Any = root
        if target:
            doc = load_schema(target.rsplit("/", 1)[-1])
        for part in [p for p in pointer.split("/") if p]:
            doc = doc[part]
        node = doc
    return node
