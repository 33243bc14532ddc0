"""mlopsctl's caches under .mlopsctl/ are written without fsync: what a crash can leave of one
(nothing, an empty file, a torn one) must read as "no entry", never as a wrong answer."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mlopsctl.fsutil import atomic_write
from mlopsctl.plan import runcache
from mlopsctl.plan.hashing import CACHE_FILE, HashCache
from mlopsctl.plan.state import LOCK_CACHE, read_state

TORN = ["", "{", '{"data.csv": [1, 2', "\x00\x00\x00\x00"]


def test_a_cache_write_lands_whole_without_fsync(tmp_path: Path) -> None:
    target = tmp_path / ".mlopsctl" / "x.json"
    atomic_write(target, '{"a": 1}', durable=False)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]  # no temp file left


@pytest.mark.parametrize("torn", TORN)
def test_a_torn_hash_cache_is_no_cache(tmp_path: Path, torn: str) -> None:
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / ".mlopsctl").mkdir()
    (tmp_path / CACHE_FILE).write_text(torn)
    cache = HashCache(tmp_path)
    assert cache.md5("data.csv") == hashlib.md5(b"a,b\n1,2\n").hexdigest()
    assert cache.hashed == ["data.csv"]  # read, not taken from the broken file


@pytest.mark.parametrize("torn", TORN)
def test_a_torn_lock_copy_is_parsed_again(tmp_path: Path, torn: str) -> None:
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages:\n  a_b:\n    cmd: echo\n")
    (tmp_path / ".mlopsctl").mkdir()
    (tmp_path / LOCK_CACHE).write_text(torn)
    assert read_state(tmp_path).stages["a_b"].cmd == "echo"


@pytest.mark.parametrize("torn", TORN)
def test_a_torn_run_cache_entry_is_a_miss(tmp_path: Path, torn: str) -> None:
    fp = "ab" * 32
    entry = tmp_path / runcache.RUNS_DIR / fp[:2] / f"{fp}.json"
    entry.parent.mkdir(parents=True)
    entry.write_text(torn)
    assert runcache.lookup(tmp_path, fp) is None
