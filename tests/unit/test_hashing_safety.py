"""The hash cache opens only regular files inside the repository: it never follows a symlink
out of it, never opens a FIFO or a device (which would hang or never end), and says which path
is wrong."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlopsctl.errors import MlopsctlError
from mlopsctl.plan.hashing import HashCache, file_md5


def no_hang(fn: Callable[[], Any], fifo: Path | None = None) -> None:
    """Run *fn*; fail (instead of hanging the suite) if it blocks on a FIFO for 20 s."""
    caught: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:
            caught.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():
        if fifo is not None:  # a writer unblocks the reader, so the thread can end
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("blocked on a FIFO")
    if caught:
        raise caught[0]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "data/dir").mkdir(parents=True)
    (root / "data/a.csv").write_text("a\n1\n")
    (root / "data/dir/b.csv").write_text("b\n2\n")
    (tmp_path / "outside.txt").write_text("secret\n")
    return root


def test_regular_files_and_folders_hash_as_before(repo: Path) -> None:
    hashes = HashCache(repo)
    assert hashes.md5("data/a.csv") == hashlib.md5(b"a\n1\n").hexdigest()
    assert (hashes.md5("data/dir") or "").endswith(".dir")
    assert hashes.md5("data/missing.csv") is None
    os.symlink("a.csv", repo / "data/alias.csv")  # a link that stays inside is followed
    assert hashes.md5("data/alias.csv") == hashes.md5("data/a.csv")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda repo: os.symlink(repo.parent / "outside.txt", repo / "data/x"),
            "leaves the repository: 'data/x' is a symlink to",
        ),
        (lambda repo: os.symlink("/etc/passwd", repo / "data/x"), "is a symlink to '/etc/passwd'"),
        (lambda repo: os.symlink("/dev/zero", repo / "data/x"), "is a symlink to '/dev/zero'"),
        (lambda repo: os.mkfifo(repo / "data/x"), "is a FIFO (named pipe), not a regular file"),
        (
            lambda repo: os.symlink(repo.parent, repo / "data/x"),
            "leaves the repository: 'data/x' is a symlink to",
        ),
    ],
    ids=["symlink-out", "etc-passwd", "dev-zero", "fifo", "folder-out"],
)
def test_anything_else_is_refused_unread(repo: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    make(repo)
    hashes = HashCache(repo)
    fifo = repo / "data/x" if (repo / "data/x").is_fifo() else None
    with pytest.raises(MlopsctlError) as err:
        no_hang(lambda: hashes.md5("data/x"), fifo)  # an opened FIFO blocks forever
    assert err.value.message.startswith("path 'data/x' ")
    assert message in err.value.message
    assert hashes.hashed == []


def test_a_folder_holding_a_link_out_or_a_fifo_is_refused(repo: Path) -> None:
    os.symlink(repo.parent / "outside.txt", repo / "data/dir/leak.txt")
    with pytest.raises(MlopsctlError, match=r"'data/dir/leak\.txt' is a symlink to"):
        HashCache(repo).md5("data/dir")
    (repo / "data/dir/leak.txt").unlink()
    os.mkfifo(repo / "data/dir/pipe")
    with pytest.raises(MlopsctlError, match="path 'data/dir/pipe' is a FIFO"):
        no_hang(lambda: HashCache(repo).md5("data/dir"), repo / "data/dir/pipe")


def test_file_md5_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(MlopsctlError, match="is a FIFO"):
        no_hang(lambda: file_md5(tmp_path / "pipe"), tmp_path / "pipe")
    os.symlink("/etc/hostname", tmp_path / "link")
    with pytest.raises(MlopsctlError, match="is a symlink, not a regular file"):
        file_md5(tmp_path / "link")


def test_a_mlopsctl_folder_linked_out_is_neither_read_nor_written(repo: Path) -> None:
    elsewhere = repo.parent / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, repo / ".mlopsctl")
    hashes = HashCache(repo)
    hashes.md5("data/a.csv")
    hashes.save()
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("size", [0, 1, 4095, 4 * 1024 * 1024 - 1, 4 * 1024 * 1024 + 1])
def test_file_md5_of_every_size_matches_hashlib(tmp_path: Path, size: int) -> None:
    """The read buffer is sized to the file (small outputs): every size still hashes whole."""
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert file_md5(path) == hashlib.md5(data).hexdigest()


def test_a_same_size_rewrite_with_its_mtime_put_back_is_hashed_again(tmp_path: Path) -> None:
    """The stat key must not lie: same inode, same size, mtime restored, other bytes."""
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,2\n")
    before = os.stat(path)
    cache = HashCache(tmp_path)
    old = cache.md5("data.csv")
    cache.save()
    time.sleep(0.05)  # kernels with coarse (per-tick) timestamps: let ctime move on
    with path.open("r+b") as fh:  # in place: the inode stays
        fh.write(b"a,b\n1,3\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    again = HashCache(tmp_path)
    assert again.md5("data.csv") == hashlib.md5(b"a,b\n1,3\n").hexdigest() != old
    assert again.hashed == ["data.csv"]
