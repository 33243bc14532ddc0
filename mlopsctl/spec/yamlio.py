"""Safe YAML loading that remembers where every key and value came from.

PyYAML composes the node tree (in C when libyaml is there); we construct plain Python values
from it ourselves so that duplicate keys and non-standard tags become located diagnostics
instead of silent overwrites or code execution.
"""

from __future__ import annotations

from typing import Any

import yaml

from mlopsctl.errors import Diagnostic
from mlopsctl.spec.document import YamlDocument, bad_interpolations, format_path
from mlopsctl.spec.yaml12 import STR_TAG
from mlopsctl.spec.yaml12 import Loader as _Loader

__all__ = [
    "MAX_DEPTH",
    "MAX_VALUES",
    "YamlDocument",
    "bad_interpolations",
    "format_path",
    "load_yaml",
]

Path = tuple[str | int, ...]

_STANDARD_TAGS = {
    "tag:yaml.org,2002:" + t
    for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "binary")
}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"


#: Limits that keep a hostile or broken file from exhausting the stack or the memory: nesting
#: depth, and values after expanding aliases (a "billion laughs" document stops here).
MAX_DEPTH = 64
MAX_VALUES = 100_000
_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


def load_yaml(text: str, file: str) -> tuple[YamlDocument, list[Diagnostic]]:
    """Parse *text*; return the document and every problem found (never raises on bad input)."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "invalid YAML"
        if exc.context:
            problem = f"{exc.context}, {problem}"
        return YamlDocument(file, None, None), [
            Diagnostic(file, line, col, "", f"YAML syntax error: {problem}")
        ]
    except yaml.YAMLError as exc:
        return YamlDocument(file, None, None), [Diagnostic(file, 1, 1, "", f"YAML error: {exc}")]
    except RecursionError:
        return YamlDocument(file, None, None), [
            Diagnostic(file, 1, 1, "", "YAML error: the document is nested too deeply")
        ]
    if root is None:
        return YamlDocument(file, None, None), []
    builder = _Builder(file)
    data = builder.construct(root, (), 0)
    if builder.too_large:
        return YamlDocument(file, None, root), [
            _mark_diag(
                file,
                root,
                (),
                f"the document has more than {MAX_VALUES} values once its aliases are expanded",
            )
        ]
    return YamlDocument(file, data, root), builder.diags


def _mark_diag(file: str, node: yaml.Node, path: Path, message: str, hint: str = "") -> Diagnostic:
    return Diagnostic(
        file, node.start_mark.line + 1, node.start_mark.column + 1, format_path(path), message, hint
    )


class _Builder:
    """Plain Python values from a node tree, with every problem recorded as a Diagnostic."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.diags: list[Diagnostic] = []
        self.values = 0
        self.too_large = False
        self._active: set[int] = set()  # ids of the collections being built (alias cycles)
        self._scalars = yaml.constructor.SafeConstructor()

    def _problem(self, node: yaml.Node, path: Path, message: str, hint: str = "") -> None:
        self.diags.append(_mark_diag(self.file, node, path, message, hint))

    def construct(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            self.too_large = True
        if self.too_large:
            return None
        if node.tag not in _STANDARD_TAGS:
            self._problem(
                node,
                path,
                f"YAML tag '{node.tag}' is not allowed",
                "mlopsctl loads YAML safely: tags that build Python objects are never executed",
            )
            return None
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            if depth >= MAX_DEPTH:
                self._problem(node, path, f"nested more than {MAX_DEPTH} levels deep")
                return None
            if id(node) in self._active:
                self._problem(node, path, "an alias refers to a node that contains it")
                return None
            self._active.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self._mapping(node, path, depth)
                return [
                    self.construct(item, (*path, i), depth + 1) for i, item in enumerate(node.value)
                ]
            finally:
                self._active.discard(id(node))
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self._problem(key_node, path, "YAML merge keys (<<) are not supported")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._problem(key_node, path, "mapping keys must be plain scalars")
                continue
            if key_node.tag not in _STANDARD_TAGS:
                self._problem(key_node, path, f"YAML tag '{key_node.tag}' is not allowed on a key")
                continue
            # keys stay as written: `on:` (of data.join) is the string "on", not true
            key = str(key_node.value)
            if key in result:
                self._problem(
                    key_node,
                    (*path, key),
                    f"duplicate key '{key}'",
                    "a later value would silently replace the earlier one",
                )
                continue
            result[key] = self.construct(value_node, (*path, key), depth + 1)
        return result

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        # A string is its text (what SafeConstructor returns for it, without its generic path);
        # dates stay strings: the schema types them, and dvc.lock round-trips them as text.
        if node.tag == STR_TAG or node.tag == _TIMESTAMP:
            return node.value
        if node.tag in _COLLECTION_TAGS:
            self._problem(node, path, f"a scalar cannot have the YAML tag '{node.tag}'")
            return None
        try:
            return self._scalars.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, KeyError, TypeError, OverflowError, IndexError):
            # PyYAML indexes into the text of a float/int: `!!float ""` raises IndexError
            tag = node.tag.rsplit(":", 1)[-1]
            self._problem(node, path, f"'{node.value}' is not a valid {tag}")
            return None
        finally:
            self._scalars.constructed_objects.clear()  # no node outlives its load
