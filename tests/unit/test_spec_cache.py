"""Unchanged spec files are not re-read or re-validated; any change is seen."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mlopsctl.errors import SpecError
from mlopsctl.spec import loader

EXAMPLE = Path(__file__).parents[2] / "examples" / "house-prices"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "p"
    shutil.copytree(EXAMPLE, root)
    return root


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Files parsed as YAML (reading mlopsctl.yaml's bytes for the cache key does not count)."""
    reads: list[str] = []
    real = loader.parse_document

    def counting(data: bytes, display: str):  # type: ignore[no-untyped-def]
        reads.append(display)
        return real(data, display)

    monkeypatch.setattr(loader, "parse_document", counting)
    return reads


def test_second_load_reads_no_spec_file(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _count_reads(monkeypatch)
    first = loader.load_project(project)
    assert sorted(reads) == ["mlopsctl.yaml", "usecases/house-prices.yaml"]
    assert (project / ".mlopsctl/specs.json").exists()
    reads.clear()
    read_bytes: list[str] = []
    real_read = loader.read_spec

    def counting_read(path: Path, display: str, root: Path | None = None):  # type: ignore[no-untyped-def]
        read_bytes.append(display)
        return real_read(path, display, root)

    monkeypatch.setattr(loader, "read_spec", counting_read)
    second = loader.load_project(project)
    assert reads == []
    assert read_bytes == ["mlopsctl.yaml"]  # the use case is not even read: its stat is unchanged
    assert second.usecases[0].spec == first.usecases[0].spec
    assert second.usecases[0].document == first.usecases[0].document


def test_an_edit_is_seen_and_a_broken_file_is_not_cached(project: Path) -> None:
    loader.load_project(project)
    uc = project / "usecases/house-prices.yaml"
    uc.write_text(uc.read_text().replace("max_iter: 200", "max_iter: 300"))
    assert loader.load_project(project).usecases[0].spec.model.params["max_iter"] == 300
    uc.write_text(uc.read_text().replace("test_size: 0.2", "test_size: 2.0"))
    for _ in range(2):  # the second time must not come from a cache either
        with pytest.raises(SpecError) as err:
            loader.load_project(project)
        assert "data.split.test_size: must be < 1" in str(err.value)


def test_semantic_errors_of_a_cached_file_are_located(project: Path) -> None:
    loader.load_project(project)
    (project / "data/houses.csv").unlink()  # the spec is unchanged; the workspace is not
    with pytest.raises(SpecError) as err:
        loader.load_project(project)
    text = (project / "usecases/house-prices.yaml").read_text().splitlines()
    line = next(i for i, t in enumerate(text, 1) if "path: data/houses.csv" in t)
    (diag,) = err.value.diagnostics
    assert (diag.file, diag.line) == ("usecases/house-prices.yaml", line)
    assert diag.message == "data file 'data/houses.csv' not found"


def test_a_change_to_the_project_file_drops_the_cache(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loader.load_project(project)
    cfg = project / "mlopsctl.yaml"
    cfg.write_text(cfg.read_text() + "\n# touched\n")
    reads = _count_reads(monkeypatch)
    loader.load_project(project)
    assert sorted(reads) == ["mlopsctl.yaml", "usecases/house-prices.yaml"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  target: price", "  target: price\n  target: other", "duplicate key 'target'"),
        (
            "params: {max_iter",
            "params: {deep: " + "[" * 70 + "]" * 70 + ", max_iter",
            "nested more than 64",
        ),
    ],
    ids=["duplicate-key", "too-deep"],
)
def test_a_file_with_a_parse_problem_is_never_cached(
    project: Path, old: str, new: str, message: str
) -> None:
    """Such a file may pass the schema (the duplicate is dropped, the deep value is null), but
    it did not validate: every load reports it again."""
    uc = project / "usecases/house-prices.yaml"
    text = uc.read_text()
    assert text.count(old) == 1
    uc.write_text(text.replace(old, new))
    for _ in range(3):
        with pytest.raises(SpecError) as err:
            loader.load_project(project)
        assert message in str(err.value)


def test_same_bytes_with_a_new_stat_are_not_parsed_again(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loader.load_project(project)
    uc = project / "usecases/house-prices.yaml"
    uc.write_bytes(uc.read_bytes())  # a checkout: new mtime, same content
    reads = _count_reads(monkeypatch)
    loader.load_project(project)
    assert reads == []


def test_a_same_size_edit_in_the_same_mtime_is_seen(project: Path) -> None:
    """The stat is only a shortcut: an edit that keeps size and mtime still changes ctime."""
    loader.load_project(project)
    uc = project / "usecases/house-prices.yaml"
    st = uc.stat()
    text = uc.read_text()
    assert "test_size: 0.2" in text
    uc.write_text(text.replace("test_size: 0.2", "test_size: 2.0"))  # same length
    os.utime(uc, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(SpecError, match="must be < 1"):
        loader.load_project(project)


def test_a_cached_file_moved_out_behind_a_symlink_is_refused(project: Path, tmp_path: Path) -> None:
    """The stat shortcut skips reading, never the check that the path stays in the repository:
    a moved file keeps its inode, size and times."""
    loader.load_project(project)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.move(project / "usecases", outside / "usecases")
    os.symlink(outside / "usecases", project / "usecases")
    with pytest.raises(SpecError) as err:
        loader.load_project(project)
    assert str(err.value) == (
        "usecases/house-prices.yaml:1:1: spec file leaves the repository: 'usecases' is a "
        f"symlink to '{outside / 'usecases'}'"
    )


def test_overlapping_outputs_of_cached_files_are_located(project: Path) -> None:
    """Two stages writing the same file: reported at the second one, from a cache hit too."""
    uc = project / "usecases/house-prices.yaml"
    uc.write_text(
        uc.read_text()
        + "stages:\n"
        + "  - name: a\n    cmd: echo a > work/x.txt\n    outs: [work/x.txt]\n"
        + "  - name: b\n    cmd: echo b > work/x.txt\n    outs: [work/x.txt]\n"
    )
    lines = uc.read_text().splitlines()
    line = max(i for i, t in enumerate(lines, 1) if t == "    outs: [work/x.txt]")
    for _ in range(2):  # parsed, then from the spec cache (no node tree until it is re-read)
        with pytest.raises(SpecError) as err:
            loader.load_project(project)
        (diag,) = err.value.diagnostics
        assert (diag.file, diag.line, diag.path) == (
            "usecases/house-prices.yaml",
            line,
            "stages[1].outs[0]",
        )
        assert "is also the output 'work/x.txt'" in diag.message
    assert "usecases/house-prices.yaml" in (project / ".mlopsctl/specs.json").read_text()
