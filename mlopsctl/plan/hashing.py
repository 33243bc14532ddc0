"""File hashes as DVC computes them, with a cache keyed by the file's stat.

A no-op plan reads no data: a file whose stat is unchanged reuses its recorded md5. The key is
(device, inode, size, mtime_ns, ctime_ns): a same-size rewrite whose mtime was put back
(``touch -d``, ``os.utime``, an archive tool) still changes ctime, which only the kernel sets.
Directory hashes follow DVC's ``.dir`` format (md5 of the sorted JSON entry list) so they
compare with dvc.lock directly.

Only regular files inside the repository are ever opened: a path that resolves outside it (a
committed symlink to ``/etc/passwd``) or that is a FIFO or a device (``/dev/zero``, which would
never end) is refused with an :class:`UnsafePathError` before anything is read.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from mlopsctl.fsutil import atomic_write
from mlopsctl.spec.paths import UnsafePathError, file_kind, inside_repo, resolve_inside

CACHE_FILE = ".mlopsctl/hashes.json"
_CHUNK = 4 * 1024 * 1024


def file_md5(path: str | os.PathLike[str]) -> str:
    """The md5 of the regular file *path*; anything else (a FIFO, a device, a symlink) is refused.

    The file is checked with lstat before it is opened (opening a device can have effects), and
    opened without following a symlink and without blocking (a FIFO swapped in meanwhile would
    otherwise wait for a writer forever), then checked again on the open descriptor.
    """
    before = os.lstat(path)
    if not stat.S_ISREG(before.st_mode):
        raise UnsafePathError(str(path), f"is {file_kind(before.st_mode)}, not a regular file")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise UnsafePathError(str(path), f"cannot be read: {exc.strerror}") from exc
    h = hashlib.md5(usedforsecurity=False)
    with os.fdopen(fd, "rb", buffering=0) as fh:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (
            before.st_dev,
            before.st_ino,
        ):
            raise UnsafePathError(str(path), "changed while it was being read")
        # a small file gets a small buffer: zeroing 4 MiB per file was most of hashing the
        # few-byte outputs of a fresh clone (one read fills it, the next sees the end)
        buf = bytearray(min(_CHUNK, now.st_size + 1))
        view = memoryview(buf)
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def _key(st: os.stat_result) -> list[int | str]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class HashCache:
    """md5 of repo files, reusing earlier results for files whose stat did not change."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._path = root / CACHE_FILE
        self._entries: dict[str, list[int | str]] = {}
        self._dirty = False
        self.hashed: list[str] = []  # files read in this run (for tests and --debug)
        try:
            inside_repo(root, CACHE_FILE)  # a committed `.mlopsctl` symlink is not followed
            self._entries = json.loads(self._path.read_text("utf-8"))
        except (OSError, ValueError, UnsafePathError):
            self._entries = {}

    def md5(self, rel: str) -> str | None:
        """The DVC md5 of *rel* (a file or a directory), or None if it does not exist.

        Raises UnsafePathError when *rel* resolves outside the repository or is neither a
        regular file nor a directory (it is not opened then).
        """
        path = resolve_inside(self.root, rel)  # a str: a plan asks this for every dep and out
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise UnsafePathError(rel, f"cannot be read: {exc.strerror}") from exc
        if stat.S_ISDIR(st.st_mode):
            return self._dir_md5(rel, path)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePathError(rel, f"is {file_kind(st.st_mode)}, not a regular file")
        return self._file_md5(rel, path, st)

    def _file_md5(self, rel: str, path: str | Path, st: os.stat_result) -> str:
        key = _key(st)
        entry = self._entries.get(rel)
        if entry is not None and entry[:-1] == key:
            return str(entry[-1])
        md5 = file_md5(path)
        self.hashed.append(rel)
        self._entries[rel] = [*key, md5]
        self._dirty = True
        return md5

    def _dir_md5(self, rel: str, base: str) -> str:
        entries = []
        # os.walk does not descend into symlinked directories; symlinked files are listed, and
        # each is resolved and checked like any other path before it is read
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in (".git", ".dvc"))
            for name in filenames:
                full = Path(dirpath) / name
                sub = full.relative_to(base).as_posix()
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):  # the folder is real: only a link can lead out
                    full = inside_repo(self.root, f"{rel}/{sub}")
                    try:
                        st = os.lstat(full)
                    except OSError as exc:
                        raise UnsafePathError(f"{rel}/{sub}", "is a dangling symlink") from exc
                if not stat.S_ISREG(st.st_mode):
                    raise UnsafePathError(
                        f"{rel}/{sub}", f"is {file_kind(st.st_mode)}, not a regular file"
                    )
                entries.append({"md5": self._file_md5(f"{rel}/{sub}", full, st), "relpath": sub})
        entries.sort(key=lambda e: e["relpath"])
        data = json.dumps(entries, sort_keys=True).encode("utf-8")
        return hashlib.md5(data, usedforsecurity=False).hexdigest() + ".dir"

    def remember(self, rel: str, md5: str) -> None:
        """Record the md5 of a file we just wrote (so the next plan need not read it)."""
        try:
            path = inside_repo(self.root, rel)
            st = os.lstat(path)
        except (OSError, UnsafePathError):
            return
        if stat.S_ISREG(st.st_mode):
            self._entries[rel] = [*_key(st), md5]
            self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        try:
            inside_repo(self.root, CACHE_FILE)
        except UnsafePathError:  # `.mlopsctl` leads out of the repository: keep nothing
            return
        atomic_write(self._path, json.dumps(self._entries, sort_keys=True), durable=False)
        self._dirty = False
