"""mlopsctl.fsutil.atomic_write: the mode a normal write gives, and all-or-nothing on errors."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlopsctl.fsutil import atomic_write


@pytest.fixture
def umask_027() -> Iterator[int]:
    """Run the test under umask 027 (not the usual 022), so a hard-coded 0644 cannot pass."""
    old = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_the_mode_a_normal_write_gives(tmp_path: Path, umask_027: int) -> None:
    atomic_write(tmp_path / "atomic.json", b"{}\n")
    (tmp_path / "plain.json").write_bytes(b"{}\n")
    assert _mode(tmp_path / "atomic.json") == 0o666 & ~umask_027 == 0o640
    assert _mode(tmp_path / "atomic.json") == _mode(tmp_path / "plain.json")


def test_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "run.sh"
    path.write_text("old\n")
    path.chmod(0o750)
    atomic_write(path, "new\n")
    assert path.read_text() == "new\n"
    assert _mode(path) == 0o750


def test_text_is_encoded_and_parents_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "card.md"
    atomic_write(path, "drift: Δ\n")
    assert path.read_bytes() == "drift: Δ\n".encode()
    atomic_write(path, "é\n", encoding="latin-1")
    assert path.read_bytes() == b"\xe9\n"


def test_a_symlink_is_replaced_not_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "out.txt").symlink_to(outside)
    atomic_write(repo / "out.txt", "mine\n")
    assert outside.read_text() == "precious\n"
    assert not (repo / "out.txt").is_symlink()
    assert (repo / "out.txt").read_text() == "mine\n"


@pytest.mark.parametrize("fault", [KeyboardInterrupt, OSError])
def test_an_error_mid_write_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: type[BaseException]
) -> None:
    path = tmp_path / "metrics.json"
    path.write_text('{"r2": 0.8}\n')

    def failing_fsync(fd: int) -> None:  # a full disk or a Ctrl-C, after the bytes were written
        raise fault("injected")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(fault):
        atomic_write(path, '{"r2": 0.1}\n')
    assert path.read_text() == '{"r2": 0.8}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_an_error_on_a_new_file_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_replace(src: object, dst: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "new.json", b"{}")
    assert list(tmp_path.iterdir()) == []
