"""Safe YAML loading that remembers where every key and value came from.

PyYAML composes the node tree (in C when libyaml is there); we construct plain Python values
from it ourselves so that duplicate keys and non-standard tags become located diagnostics
instead of silent overwrites or code execution.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from mlopsctl.errors import Diagnostic

try:  # libyaml is ~10x faster; fall back to the pure-Python parser where it is missing
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]


class _Loader(_BaseLoader):
    """YAML 1.1 reads ``1e-3`` as a string; users (and DVC's YAML 1.2 loader) mean a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)

Path = tuple[str | int, ...]

_STANDARD_TAGS = {
    "tag:yaml.org,2002:" + t
    for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "binary")
}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_constructor = yaml.constructor.SafeConstructor()


def format_path(path: Sequence[str | int]) -> str:
    """``("model", "params", "C")`` -> ``model.params.C``; list items as ``stages[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True)
class YamlDocument:
    """A loaded YAML file: its value plus the node tree for locating key paths."""

    file: str
    data: Any
    root: yaml.Node | None

    def locate(self, path: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
        """1-based (line, column) of the value at *path* (or of its key with ``key=True``).

        A path that leaves the tree resolves to the deepest node that exists.
        """
        node = self.root
        if node is None:
            return 1, 1
        mark = node.start_mark
        for part in path:
            found = None
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                        found = (k, v)
                        break
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(part, int)
                and 0 <= part < len(node.value)
            ):
                item = node.value[part]
                found = (item, item)
            if found is None:
                break
            mark = found[0].start_mark if key and part == path[-1] else found[1].start_mark
            node = found[1]
        return mark.line + 1, mark.column + 1

    def diagnostic(
        self, path: Sequence[str | int], message: str, *, hint: str = "", key: bool = False
    ) -> Diagnostic:
        line, col = self.locate(path, key=key)
        return Diagnostic(self.file, line, col, format_path(path), message, hint)


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
    diags: list[Diagnostic] = []
    data = _construct(root, (), file, diags) if root is not None else None
    return YamlDocument(file, data, root), diags


def _mark_diag(file: str, node: yaml.Node, path: Path, message: str, hint: str = "") -> Diagnostic:
    return Diagnostic(
        file, node.start_mark.line + 1, node.start_mark.column + 1, format_path(path), message, hint
    )


def _construct(node: yaml.Node, path: Path, file: str, diags: list[Diagnostic]) -> Any:
    if node.tag not in _STANDARD_TAGS:
        diags.append(
            _mark_diag(
                file,
                node,
                path,
                f"YAML tag '{node.tag}' is not allowed",
                "mlopsctl loads YAML safely: tags that build Python objects are never executed",
            )
        )
        return None
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                diags.append(
                    _mark_diag(file, key_node, path, "YAML merge keys (<<) are not supported")
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                diags.append(_mark_diag(file, key_node, path, "mapping keys must be plain scalars"))
                continue
            key = key_node.value if key_node.tag == _TIMESTAMP else _scalar(key_node)
            if not isinstance(key, str):
                key = str(key_node.value)
            if key in result:
                diags.append(
                    _mark_diag(
                        file,
                        key_node,
                        (*path, key),
                        f"duplicate key '{key}'",
                        "a later value would silently replace the earlier one",
                    )
                )
                continue
            result[key] = _construct(value_node, (*path, key), file, diags)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), file, diags) for i, item in enumerate(node.value)]
    # Dates stay strings: the schema types them, and dvc.lock round-trips them as text.
    if node.tag == _TIMESTAMP:
        return node.value
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    return _constructor.construct_object(node, deep=True)


_ENV_REF = re.compile(r"\$\{([^}]*)\}")
_ENV_OK = re.compile(r"env:[A-Za-z_][A-Za-z0-9_]*")


def bad_interpolations(value: str) -> list[str]:
    """The ``${...}`` references in *value* that are not of the form ``${env:NAME}``."""
    bad = [m.group(0) for m in _ENV_REF.finditer(value) if not _ENV_OK.fullmatch(m.group(1))]
    if "${" in value and not _ENV_REF.search(value):
        bad.append(value[value.index("${") :])
    return bad
