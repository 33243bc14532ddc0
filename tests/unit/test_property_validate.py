"""Property tests: whatever a user writes, validation answers with located diagnostics.

Start from the valid documents we ship (the examples and the annotated SPEC example), break them
at random (drop, retype, insert or rename keys; garble the YAML text; random bytes) and check that
loading never raises anything but an :class:`MlopsctlError` and that every diagnostic has a real
location.
"""

from __future__ import annotations

import copy
import shutil
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlopsctl.errors import Diagnostic, MlopsctlError, SpecError
from mlopsctl.spec.loader import load_project, load_usecases, validate_files
from mlopsctl.spec.yamlio import load_yaml

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = [
    ROOT / "tests" / "fixtures" / "spec_example",
    *sorted(p for p in (ROOT / "examples").iterdir() if (p / "mlopsctl.yaml").is_file()),
]


def _load(path: Path) -> dict[str, Any]:
    doc, diags = load_yaml(path.read_text("utf-8"), path.name)
    assert not diags and isinstance(doc.data, dict), diags
    return doc.data


USECASE_TEXTS = [
    f.read_text("utf-8") for p in PROJECTS for f in sorted((p / "usecases").glob("*.yaml"))
]
USECASES = [_load(f) for p in PROJECTS for f in sorted((p / "usecases").glob("*.yaml"))]
PROJECT_FILES = [_load(p / "mlopsctl.yaml") for p in PROJECTS]
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SPEC example project (its data files make paths resolvable), reused by every example."""
    root = tmp_path_factory.mktemp("prop") / "project"
    shutil.copytree(PROJECTS[0], root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


# --- random values and mutations -------------------------------------------------------------

KEYS = st.one_of(
    st.sampled_from(["name", "path", "min", "max", "format", "on", "target", "dask", "x", ""]),
    st.text(string.ascii_letters + string.digits + "_-. $", min_size=0, max_size=12),
)
SCALARS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=20),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["${env:X}", "${", "../x.csv", "/abs", "2025-01-01", "dask", "time", "rest"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
    max_leaves=6,
)

Path_ = tuple[str | int, ...]


def _paths(value: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*path, i))


def _parent(doc: Any, path: Path_) -> Any:
    node = doc
    for part in path[:-1]:
        node = node[part]
    return node


def _mutate(doc: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        everything = list(_paths(doc))
        inner = [(p, v) for p, v in everything if p]
        op = data.draw(st.sampled_from(["drop", "retype", "insert", "rename"]), label="op")
        if op in ("drop", "retype", "rename") and inner:
            path, _value = data.draw(st.sampled_from(inner), label="at")
            parent = _parent(doc, path)
            if op == "drop":
                del parent[path[-1]]
            elif op == "retype":
                parent[path[-1]] = data.draw(VALUES, label="value")
            elif isinstance(parent, dict):
                new = data.draw(KEYS, label="new key")
                value = parent.pop(path[-1])
                parent[new] = value
        else:
            maps = [(p, v) for p, v in everything if isinstance(v, dict)]
            path, mapping = data.draw(st.sampled_from(maps), label="into")
            mapping[data.draw(KEYS, label="key")] = data.draw(VALUES, label="value")
    return doc


def _check(diags: list[Diagnostic] | tuple[Diagnostic, ...]) -> None:
    for d in diags:
        assert d.line >= 1 and d.column >= 1, d
        assert d.file and d.message, d
        d.format()


def _validate_text(root: Path, text: str | bytes, name: str = "usecases/fuzz.yaml") -> None:
    target = root / name
    if isinstance(text, bytes):
        target.write_bytes(text)
    else:
        target.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        _check(validate_files(root, [target]))
        _ucs, diags = load_usecases(root, [target], None)
        _check(diags)
    except MlopsctlError as exc:  # allowed: a user error, reported as such
        _check(getattr(exc, "diagnostics", ()))
    finally:
        target.unlink()


# --- the properties --------------------------------------------------------------------------


@SETTINGS
@given(base=st.sampled_from(USECASES), data=st.data())
def test_mutated_usecases_give_located_diagnostics(
    workdir: Path, base: dict[str, Any], data: st.DataObject
) -> None:
    _validate_text(workdir, yaml.safe_dump(_mutate(base, data), sort_keys=False))


@SETTINGS
@given(base=st.sampled_from(PROJECT_FILES), data=st.data())
def test_mutated_project_files_give_located_diagnostics(
    workdir: Path, base: dict[str, Any], data: st.DataObject
) -> None:
    project_file = workdir / "mlopsctl.yaml"
    original = project_file.read_bytes()
    project_file.write_text(yaml.safe_dump(_mutate(base, data), sort_keys=False), "utf-8")
    try:
        try:
            load_project(workdir)
        except SpecError as exc:
            _check(exc.diagnostics)
        except MlopsctlError:
            pass
        _check(validate_files(workdir, [project_file]))
    finally:
        project_file.write_bytes(original)


YAML_TOKENS = st.sampled_from(
    [
        "!!float ",
        "!!int ",
        "!!bool ",
        "!!map ",
        "!!seq ",
        "!!binary ",
        "!!set ",
        "!!timestamp ",
        "!!python/object/apply:os.system ",
        "!custom ",
        "&a ",
        "*a",
        "<<: ",
        "? ",
        "- ",
        ": ",
        "\n  ",
        "~",
        "1e-3",
        "2025-01-01",
    ]
)
YAML_NOISE = st.one_of(
    YAML_TOKENS,
    st.text(":-[]{},#&*!|>'\"%@`?~ \n\t\\abc01.${}", min_size=1, max_size=6),
)


@SETTINGS
@given(base=st.sampled_from(USECASE_TEXTS), data=st.data())
def test_garbled_yaml_text_gives_located_diagnostics(
    workdir: Path, base: str, data: st.DataObject
) -> None:
    text = base
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        at = data.draw(st.integers(0, len(text)), label="at")
        cut = data.draw(st.integers(0, 8), label="cut")
        text = text[:at] + data.draw(YAML_NOISE, label="insert") + text[at + cut :]
    _validate_text(workdir, text)


@SETTINGS
@given(text=st.text(max_size=200))
def test_random_text_gives_located_diagnostics(workdir: Path, text: str) -> None:
    _validate_text(workdir, text)


@SETTINGS
@given(raw=st.binary(max_size=200))
def test_random_bytes_give_located_diagnostics(workdir: Path, raw: bytes) -> None:
    _validate_text(workdir, raw)


@pytest.mark.parametrize(
    "text",
    [
        "a: &a [*a]\n",  # an alias inside itself
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"  # "billion laughs"
        + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n"
            for i in range(8)
        ),
        "x: " + "[" * 300 + "]" * 300 + "\n",  # deep nesting
        "!!python/name:os.system : 1\n",  # a tag on a key
        "x: !!float abc\n",
        "x: !!bool maybe\n",
        "x: !!int abc\n",
        "x: !!map abc\n",
        "x: !!binary '@@'\n",
        "\ufeffapiVersion: mlopsctl/v1\n",
        "apiVersion: mlopsctl/v1\nkind: UseCase\n<<: {a: 1}\n",
    ],
    ids=[
        "recursive-alias",
        "billion-laughs",
        "deep-nesting",
        "tag-on-key",
        "bad-float",
        "bad-bool",
        "bad-int",
        "map-tag-on-scalar",
        "bad-binary",
        "bom",
        "merge-key",
    ],
)
def test_hostile_yaml_is_a_diagnostic(workdir: Path, text: str) -> None:
    _validate_text(workdir, text)
    _doc, diags = load_yaml(text, "x.yaml")
    _check(diags)


@pytest.mark.parametrize(
    "path",
    ["a" * 300 + ".csv", "data/" + "b" * 5000, "a\\0b.csv", "data/\\x01.csv", "C:\\\\data.csv"],
    ids=["long-name", "very-long", "nul", "control", "windows-drive"],
)
def test_odd_data_paths_are_diagnostics(workdir: Path, path: str) -> None:
    text = USECASE_TEXTS[0].replace("path: data/customers.csv}", f'path: "{path}"}}')
    assert text != USECASE_TEXTS[0]
    target = workdir / "usecases" / "odd.yaml"
    target.write_text(text, "utf-8")
    try:
        ucs, diags = load_usecases(workdir, [target], None)
    finally:
        target.unlink()
    _check(diags)
    assert not ucs
    assert [d.path for d in diags] == ["data.sources.customers.path"], diags
