"""A yes/no JSON-Schema check for the common case, a valid spec, without importing jsonschema.

On a fresh clone (no spec cache) every spec is validated: importing jsonschema and walking a
large use case with it was most of a cold ``plan``. This module compiles the subset of Draft
2020-12 our schemas use into plain Python predicates that only answer "valid" or "not valid".
A valid document needs nothing more; for an invalid one ``schema.validate_against_schema``
still asks jsonschema, whose errors it turns into located messages. So this check may only ever
be *stricter* than jsonschema, never looser: a schema using any keyword not implemented here
makes :func:`is_valid` answer None ("cannot tell") and jsonschema decides, and a test compares
both on every example and on thousands of mutations of them.
"""

from __future__ import annotations

import functools
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Check = Callable[[Any], bool]

#: keywords that never change whether a document is valid
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)


class Unsupported(Exception):
    """The schema uses something this module does not implement: leave it to jsonschema."""


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Number) and not isinstance(v, bool)


# the type checks of jsonschema's Draft 2020-12 type checker, exactly
_TYPES: dict[str, Check] = {
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "null": lambda v: v is None,
    "number": _is_number,
    "object": lambda v: isinstance(v, dict),
    "string": lambda v: isinstance(v, str),
}


def equal(one: Any, two: Any) -> bool:
    """JSON equality as jsonschema decides it for enum, const and uniqueItems (True is not 1)."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, Sequence) and isinstance(two, Sequence):
        return len(one) == len(two) and all(equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, Mapping) and isinstance(two, Mapping):
        return one.keys() == two.keys() and all(equal(one[k], two[k]) for k in one)
    if isinstance(one, bool) or isinstance(two, bool):
        return isinstance(one, bool) and isinstance(two, bool) and one == two
    return bool(one == two)


class _Compiler:
    def __init__(self, documents: Mapping[str, Mapping[str, Any]], base: str) -> None:
        self.documents = documents  # file name -> schema
        self.base = base
        self.refs: dict[tuple[str, str], Check] = {}

    def ref(self, where: str, ref: str) -> Check:
        file, _, pointer = ref.partition("#")
        file = file or where
        key = (file, pointer)
        if key not in self.refs:
            if file not in self.documents:
                raise Unsupported(f"$ref to {file}")
            target: Any = self.documents[file]
            for part in [p for p in pointer.split("/") if p]:
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, Mapping) or part not in target:
                    raise Unsupported(f"$ref {ref}")
                target = target[part]
            slot: list[Check] = []
            # a placeholder first: a recursive schema refers to itself
            self.refs[key] = lambda v: slot[0](v)
            slot.append(self.compile(target, file))
        return self.refs[key]

    def compile(self, schema: Any, where: str) -> Check:
        if schema is True:
            return lambda v: True
        if schema is False:
            return lambda v: False
        if not isinstance(schema, Mapping):
            raise Unsupported("a schema that is neither an object nor a boolean")
        checks: list[Check] = []
        for key, arg in schema.items():
            if key in _ANNOTATIONS or key in ("then", "else"):
                continue
            checks.append(self._keyword(key, arg, schema, where))
        if not checks:
            return lambda v: True
        if len(checks) == 1:
            return checks[0]
        return lambda v: all(c(v) for c in checks)

    def _keyword(self, key: str, arg: Any, schema: Mapping[str, Any], where: str) -> Check:
        if key == "$ref":
            return self.ref(where, str(arg))
        if key == "type":
            names = [arg] if isinstance(arg, str) else list(arg)
            tests = [_TYPES[n] for n in names]
            return lambda v: any(t(v) for t in tests)
        if key == "enum":
            options = list(arg)
            return lambda v: any(equal(v, o) for o in options)
        if key == "const":
            return lambda v: equal(v, arg)
        if key == "properties":
            props = {k: self.compile(s, where) for k, s in arg.items()}
            return lambda v: (
                not isinstance(v, dict) or all(c(v[k]) for k, c in props.items() if k in v)
            )
        if key == "additionalProperties":
            if "patternProperties" in schema:
                raise Unsupported("patternProperties")
            known = frozenset(schema.get("properties", {}))
            extra = self.compile(arg, where)
            return lambda v: (
                not isinstance(v, dict) or all(extra(x) for k, x in v.items() if k not in known)
            )
        if key == "required":
            names = list(arg)
            return lambda v: not isinstance(v, dict) or all(n in v for n in names)
        if key == "propertyNames":
            names_ok = self.compile(arg, where)
            return lambda v: not isinstance(v, dict) or all(names_ok(k) for k in v)
        if key == "minProperties":
            return lambda v: not isinstance(v, dict) or len(v) >= arg
        if key == "maxProperties":
            return lambda v: not isinstance(v, dict) or len(v) <= arg
        if key == "items":
            if not isinstance(arg, Mapping | bool):
                raise Unsupported("items as a list")
            item = self.compile(arg, where)
            return lambda v: not isinstance(v, list) or all(item(x) for x in v)
        if key == "minItems":
            return lambda v: not isinstance(v, list) or len(v) >= arg
        if key == "maxItems":
            return lambda v: not isinstance(v, list) or len(v) <= arg
        if key == "uniqueItems":
            if not arg:
                return lambda v: True
            return lambda v: (
                not isinstance(v, list)
                or all(not equal(a, b) for i, a in enumerate(v) for b in v[i + 1 :])
            )
        if key == "minLength":
            return lambda v: not isinstance(v, str) or len(v) >= arg
        if key == "maxLength":
            return lambda v: not isinstance(v, str) or len(v) <= arg
        if key == "pattern":
            rx = re.compile(arg)
            return lambda v: not isinstance(v, str) or rx.search(v) is not None
        if key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            return _bound(key, arg)
        if key == "not":
            inner = self.compile(arg, where)
            return lambda v: not inner(v)
        if key in ("allOf", "anyOf", "oneOf"):
            subs = [self.compile(s, where) for s in arg]
            if key == "allOf":
                return lambda v: all(c(v) for c in subs)
            if key == "anyOf":
                return lambda v: any(c(v) for c in subs)
            return lambda v: sum(1 for c in subs if c(v)) == 1
        if key == "if":
            cond = self.compile(arg, where)
            then = self.compile(schema.get("then", True), where)
            other = self.compile(schema.get("else", True), where)
            return lambda v: then(v) if cond(v) else other(v)
        raise Unsupported(f"keyword {key}")


def _bound(key: str, limit: Any) -> Check:
    if not _is_number(limit):
        raise Unsupported(f"{key} of {limit!r}")
    if key == "minimum":
        return lambda v: not _is_number(v) or v >= limit
    if key == "maximum":
        return lambda v: not _is_number(v) or v <= limit
    if key == "exclusiveMinimum":
        return lambda v: not _is_number(v) or v > limit
    return lambda v: not _is_number(v) or v < limit


@functools.cache
def _compiled(filename: str) -> Check | None:
    from mlopsctl.spec.schema import SCHEMA_FILES, load_schema

    documents: dict[str, Mapping[str, Any]] = {}
    for name in SCHEMA_FILES.values():
        schema = load_schema(name)
        documents[name] = schema
        documents[str(schema.get("$id", name))] = schema
    try:
        return _Compiler(documents, filename).compile(documents[filename], filename)
    except (Unsupported, KeyError, TypeError, re.error):
        return None


def is_valid(data: Any, filename: str) -> bool | None:
    """Whether *data* satisfies the schema file *filename*; None when this module cannot tell."""
    check = _compiled(filename)
    if check is None:
        return None
    try:
        return check(data)
    except RecursionError:
        return None
