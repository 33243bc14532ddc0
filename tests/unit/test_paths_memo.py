"""`resolved_once`: a read-only pass (plan) resolves each repository path once, and only there."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from mlopsctl.spec.paths import UnsafePathError, inside_repo, resolve_inside, resolved_once


def test_inside_the_block_an_answer_is_reused_and_outside_it_is_not(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    with resolved_once():
        assert resolve_inside(tmp_path, "data/x.csv") == str(tmp_path.resolve() / "data/x.csv")
        # the folder becomes a symlink out of the repository meanwhile: the pass keeps its answer
        (tmp_path / "data").rmdir()
        os.symlink(outside, tmp_path / "data")
        assert resolve_inside(tmp_path, "data/x.csv") == str(tmp_path.resolve() / "data/x.csv")
    # after the block every call resolves afresh, as apply's checks before any write must
    with pytest.raises(UnsafePathError, match="leaves the repository: 'data' is a symlink"):
        resolve_inside(tmp_path, "data/x.csv")


def test_a_refusal_is_remembered_and_raised_again_each_time(tmp_path: Path) -> None:
    os.symlink("/etc", tmp_path / "etc")
    with resolved_once():
        for _ in range(2):
            with pytest.raises(UnsafePathError) as info:
                inside_repo(tmp_path, "etc/passwd")
            assert info.value.rel == "etc/passwd"
            assert "leaves the repository" in info.value.problem
        with pytest.raises(UnsafePathError, match="must be relative"):
            resolve_inside(tmp_path, "/etc/passwd")


def test_other_threads_never_see_the_block(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    seen: list[str] = []
    with resolved_once():
        resolve_inside(tmp_path, "d/f")
        (tmp_path / "d").rmdir()
        os.symlink("/tmp", tmp_path / "d")

        def other() -> None:
            try:
                resolve_inside(tmp_path, "d/f")
            except UnsafePathError as exc:
                seen.append(exc.problem)

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert seen and "leaves the repository" in seen[0]
