"""DVC reads dvc.yaml, dvc.lock and params through ruamel.yaml's C parser: the same values."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

#: YAML 1.2 values that a parser could get wrong (1.1 reads several of them differently)
TRICKY = """\
octal: 0o17
hex: 0x1F
sexagesimal: 1:20
date: 2024-01-01
timestamp: 2001-12-14t21:59:43.10-05:00
small: 1.0e-07
exp: 1e3
underscored: 1_000
inf: .inf
word: no
yes: yes
on: on
empty: ''
tilde: ~
quoted_tilde: '~'
numbery: '123'
big: 123456789012345678901234567890
multi: "two\\nlines"
folded: >
  one
  two
literal: |
  keep
  lines
unicode: "\\xFCber"
list: [1, '2', null, true, 0.5]
anchor: &a {x: 1}
merged: {<<: *a, y: 2}
"""


def test_the_c_parser_is_installed_and_used() -> None:
    """pyproject depends on ruamel.yaml.clib: without it DVC parses ~5x slower."""
    from ruamel.yaml.main import CParser

    assert CParser is not None
    assert YAML(typ="safe").Parser is CParser


EXAMPLES = sorted((Path(__file__).parents[2] / "mlopsctl/examples").glob("*/usecases/*.yaml"))


@pytest.mark.parametrize("text", [TRICKY, *EXAMPLES], ids=["tricky", *(p.stem for p in EXAMPLES)])
def test_c_and_pure_parsers_read_the_same_values(text: str | Path) -> None:
    if isinstance(text, Path):  # a params file DVC reads: the examples' use cases
        text = text.read_text("utf-8")
    pure = YAML(typ="safe", pure=True).load(text)
    fast = YAML(typ="safe").load(text)
    assert fast == pure
    assert repr(fast) == repr(pure)  # the same types too (15 is not 15.0, '123' not 123)
