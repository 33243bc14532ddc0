"""A fast safe YAML loader with YAML 1.2 scalars, as DVC (ruamel) reads the same files.

PyYAML implements YAML 1.1, where ``on``/``off``/``yes``/``no`` are booleans and ``1e-3`` is a
string. DVC reads params and dvc.lock as YAML 1.2; reading them any other way would make plan
and ``dvc status`` disagree (a join key ``on:`` would become ``True``). So: only true/false are
booleans, exponent floats without a dot are floats, and dates are strings.
"""

from __future__ import annotations

import re
from typing import Any

from yaml.nodes import Node, ScalarNode

try:  # libyaml parses ~10x faster; fall back to the pure-Python parser where it is missing
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

_BOOL = "tag:yaml.org,2002:bool"
STR_TAG = "tag:yaml.org,2002:str"


class Loader(_BaseLoader):
    """Safe loading with YAML 1.2 booleans and floats."""

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        # A string scalar is its text (SafeConstructor.construct_yaml_str returns node.value).
        # Most values of dvc.lock are strings (paths, md5s), and PyYAML's generic path for each
        # (alias bookkeeping, constructor lookup) was the larger part of parsing it.
        if node.tag == STR_TAG and type(node) is ScalarNode:
            return node.value
        return super().construct_object(node, deep)


# YAML 1.2's core schema has no implicit timestamps either: a date stays the text it is.
_DROPPED = {_BOOL, "tag:yaml.org,2002:timestamp"}
Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)
