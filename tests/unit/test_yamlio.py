"""The safe YAML loader: values as users mean them, and where every key and value came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlopsctl.errors import Diagnostic, did_you_mean
from mlopsctl.spec.yamlio import (
    MAX_DEPTH,
    MAX_VALUES,
    bad_interpolations,
    format_path,
    load_yaml,
)

TEXT = """\
# a comment
goal:
  target: churned
  metrics:
    roc_auc: {min: 0.8}
data:
  join:
    - {left: a, right: b, on: id}
    - left: b
      right: c
      on: [x, y]
"""


def load(text: str) -> tuple[object, list[Diagnostic]]:
    doc, diags = load_yaml(text, "f.yaml")
    return doc.data, diags


def test_locates_values_and_keys() -> None:
    doc, diags = load_yaml(TEXT, "f.yaml")
    assert diags == []
    assert doc.locate(("goal",)) == (3, 3)  # the value: the mapping under goal
    assert doc.locate(("goal",), key=True) == (2, 1)
    assert doc.locate(("goal", "target")) == (3, 11)
    assert doc.locate(("goal", "target"), key=True) == (3, 3)
    assert doc.locate(("goal", "metrics", "roc_auc", "min")) == (5, 20)
    assert doc.locate(("goal", "metrics", "roc_auc", "min"), key=True) == (5, 15)
    assert doc.locate(("data", "join", 0)) == (8, 7)
    assert doc.locate(("data", "join", 0, "on")) == (8, 31)
    assert doc.locate(("data", "join", 1, "right")) == (10, 14)
    assert doc.locate(("data", "join", 1, "on", 1)) == (11, 15)
    assert doc.locate(()) == (2, 1)


def test_a_path_that_leaves_the_tree_points_at_the_deepest_node_there_is() -> None:
    doc, _ = load_yaml(TEXT, "f.yaml")
    assert doc.locate(("goal", "problem")) == doc.locate(("goal",))
    assert doc.locate(("data", "join", 7, "on")) == doc.locate(("data", "join"))
    assert doc.locate(("data", "join", "x")) == doc.locate(("data", "join"))


def test_diagnostic_carries_file_location_and_path() -> None:
    doc, _ = load_yaml(TEXT, "usecases/x.yaml")
    d = doc.diagnostic(("data", "join", 1, "on", 1), "bad column", hint="h")
    assert d == Diagnostic("usecases/x.yaml", 11, 15, "data.join[1].on[1]", "bad column", "h")
    assert d.format() == "usecases/x.yaml:11:15: data.join[1].on[1]: bad column (h)"
    assert Diagnostic("f", 1, 1, "", "m").format() == "f:1:1: m"
    assert d.to_dict() == {
        "file": "usecases/x.yaml",
        "line": 11,
        "column": 15,
        "path": "data.join[1].on[1]",
        "message": "bad column",
        "hint": "h",
    }


def test_format_path() -> None:
    assert format_path(()) == ""
    assert format_path(("model", "params", "C")) == "model.params.C"
    assert format_path(("stages", 0, "deps", 2)) == "stages[0].deps[2]"
    assert format_path((0, "a")) == "[0].a"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("x: 1e-3", 0.001),
        ("x: 1E+5", 100000.0),
        ("x: -2.5e3", -2500.0),
        ("x: 0.1", 0.1),
        ("x: 10", 10),
        ("x: .inf", float("inf")),
        ("x: 1_000", 1000),
        ("x: '1e-3'", "1e-3"),
        ("x: 2025-01-01", "2025-01-01"),
        ("x: 2025-01-01T10:00:00Z", "2025-01-01T10:00:00Z"),
        ('x: "2025-01-01"', "2025-01-01"),
        ("x: ~", None),
        ("x: true", True),
        ("x: [a, 2]", ["a", 2]),
        ("x: !!str 12", "12"),
    ],
)
def test_scalars_load_as_users_mean_them(text: str, value: object) -> None:
    data, diags = load(text)
    assert diags == []
    assert isinstance(data, dict)
    assert data["x"] == value
    assert type(data["x"]) is type(value)


def test_keys_stay_strings_as_written() -> None:
    data, diags = load("on: id\nyes: 1\nno: 2\n3: c\n2025-01-01: d\nnull: e\ntrue: f\n")
    assert diags == []
    assert data == {
        "on": "id",
        "yes": 1,
        "no": 2,
        "3": "c",
        "2025-01-01": "d",
        "null": "e",
        "true": "f",
    }


def test_join_on_key_is_the_string_on() -> None:
    data, _ = load("join:\n  - {left: a, right: b, on: id}\n")
    assert isinstance(data, dict)
    assert data["join"][0] == {"left": "a", "right": "b", "on": "id"}


def test_duplicate_keys_are_located_at_the_second_one() -> None:
    data, diags = load("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n")
    assert data == {"a": 1, "b": {"c": 1}}  # the first value stays; nothing silently replaced
    assert [(d.line, d.column, d.path, d.message) for d in diags] == [
        (4, 3, "b.c", "duplicate key 'c'"),
        (5, 1, "a", "duplicate key 'a'"),
    ]


@pytest.mark.parametrize(
    ("text", "line", "column", "tag"),
    [
        ("x: !!python/object/apply:os.system ['true']", 1, 4, "python/object/apply:os.system"),
        ("a:\n  b: !!python/name:os.system ''", 2, 6, "python/name:os.system"),
        ("x: !custom 1", 1, 4, "!custom"),
        ("x: !!set {a, b}", 1, 4, "set"),
        ("x: !!omap [a: 1]", 1, 4, "omap"),
        ("- !!python/tuple [1, 2]", 1, 3, "python/tuple"),
    ],
)
def test_non_standard_tags_are_diagnostics_and_never_run(
    text: str, line: int, column: int, tag: str
) -> None:
    data, diags = load(text)
    assert len(diags) == 1, diags
    d = diags[0]
    assert (d.line, d.column) == (line, column)
    assert tag in d.message and "is not allowed" in d.message
    assert "os" not in repr(data)


def test_python_tag_does_not_execute(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    _data, diags = load(f"x: !!python/object/apply:os.system ['touch {marker}']\n")
    assert diags
    assert not marker.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("!!python/name:os.system : 1", "is not allowed on a key"),
        ("x: !!float abc", "'abc' is not a valid float"),
        ("x: !!int abc", "'abc' is not a valid int"),
        ("x: !!bool maybe", "'maybe' is not a valid bool"),
        ("x: !!map abc", "a scalar cannot have the YAML tag"),
        ("base: &b {a: 1}\nx:\n  <<: *b\n", "merge keys (<<) are not supported"),
        ("? [a, b]\n: 1\n", "mapping keys must be plain scalars"),
    ],
)
def test_malformed_values_are_diagnostics(text: str, message: str) -> None:
    _data, diags = load(text)
    assert any(message in d.message for d in diags), diags
    assert all(d.line >= 1 and d.column >= 1 for d in diags)


def test_syntax_errors_are_located() -> None:
    doc, diags = load_yaml("a: 1\nb: [1, 2\nc: 3\n", "f.yaml")
    assert doc.data is None and doc.root is None
    assert len(diags) == 1
    assert diags[0].message.startswith("YAML syntax error: ")
    assert diags[0].line >= 2
    _doc, diags = load_yaml("a:\n  b: 1\n c: 2\n", "f.yaml")
    assert (diags[0].line, diags[0].column) == (3, 2)


def test_tabs_are_a_syntax_error() -> None:
    _data, diags = load("a:\n\tb: 1\n")
    assert diags and diags[0].message.startswith("YAML syntax error")
    assert diags[0].line == 2


def test_empty_documents() -> None:
    assert load("") == (None, [])
    assert load("# only a comment\n") == (None, [])


def test_an_alias_inside_itself_is_a_diagnostic() -> None:
    data, diags = load("a: &a [1, *a]\n")
    assert data == {"a": [1, None]}
    assert [d.message for d in diags] == ["an alias refers to a node that contains it"]


def test_aliases_are_expanded() -> None:
    data, diags = load("base: &b {x: 1}\nother: *b\n")
    assert diags == []
    assert data == {"base": {"x": 1}, "other": {"x": 1}}


def test_billion_laughs_stops_at_the_value_limit() -> None:
    text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
    )
    doc, diags = load_yaml(text, "f.yaml")
    assert doc.data is None
    assert [d.message for d in diags] == [
        f"the document has more than {MAX_VALUES} values once its aliases are expanded"
    ]


def test_deep_nesting_is_a_diagnostic() -> None:
    n = MAX_DEPTH + 5
    data, diags = load("x: " + "[" * n + "]" * n + "\n")
    assert isinstance(data, dict)
    assert [d.message for d in diags] == [f"nested more than {MAX_DEPTH} levels deep"]
    _data, diags = load("x: " + "[" * 5000 + "]" * 5000 + "\n")
    assert len(diags) == 1 and diags[0].line == 1


def test_did_you_mean() -> None:
    assert did_you_mean("primary_metrc", ["primary_metric", "metrics"]) == (
        "did you mean 'primary_metric'?"
    )
    assert did_you_mean("estimater", ["estimator", "params"]) == "did you mean 'estimator'?"
    assert did_you_mean("zzz", ["estimator", "params"]) == ""
    assert did_you_mean("x", []) == ""


@pytest.mark.parametrize(
    ("value", "bad"),
    [
        ("${env:DB_URL}", []),
        ("postgres://${env:USER}:${env:PASS}@host/db", []),
        ("no interpolation", []),
        ("$env:X", []),
        ("${env:1BAD}", ["${env:1BAD}"]),
        ("${HOME}/x", ["${HOME}"]),
        ("${env:}", ["${env:}"]),
        ("${ env:X}", ["${ env:X}"]),
        ("${file:x}", ["${file:x}"]),
        ("a ${env:X", ["${env:X"]),
    ],
)
def test_bad_interpolations(value: str, bad: list[str]) -> None:
    assert bad_interpolations(value) == bad


def test_byte_order_mark_and_crlf_line_ends() -> None:
    doc, diags = load_yaml("\ufeffa: 1\r\nb:\r\n  c: 2\r\n", "f.yaml")
    assert diags == []
    assert doc.data == {"a": 1, "b": {"c": 2}}
    assert doc.locate(("b", "c")) == (3, 6)


@pytest.mark.parametrize("text", ['x: !!float ""\n', "x: !!float\n", 'x: !!int ""\n'])
def test_an_empty_tagged_number_is_a_diagnostic_not_a_crash(text: str) -> None:
    # found by test_property_validate: PyYAML's float/int constructors index into the text
    doc, diags = load_yaml(text, "f.yaml")
    assert doc.data == {"x": None}
    assert len(diags) == 1
    assert (diags[0].line, diags[0].column, diags[0].path) == (1, 4, "x")
    assert "is not a valid" in diags[0].message
