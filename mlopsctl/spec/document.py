"""A loaded YAML document and the light helpers that read it, without the YAML parser.

Split from :mod:`mlopsctl.spec.yamlio` so that a plan whose spec files all hit the spec cache
imports no YAML library at all (the parser is ~20 ms of a ~0.25 s plan).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlopsctl.errors import Diagnostic

if TYPE_CHECKING:
    import yaml


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
        import yaml  # loaded already: only a parsed document has a node tree

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


_ENV_REF = re.compile(r"\$\{([^}]*)\}")
_ENV_OK = re.compile(r"env:[A-Za-z_][A-Za-z0-9_]*")


def bad_interpolations(value: str) -> list[str]:
    """The ``${...}`` references in *value* that are not of the form ``${env:NAME}``."""
    bad = [m.group(0) for m in _ENV_REF.finditer(value) if not _ENV_OK.fullmatch(m.group(1))]
    if "${" in value and not _ENV_REF.search(value):
        bad.append(value[value.index("${") :])
    return bad
