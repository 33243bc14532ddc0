"""File hashes as DVC computes them, with a cache keyed by (inode, size, mtime_ns).

A no-op plan reads no data: a file whose stat is unchanged reuses its recorded md5. Directory
hashes follow DVC's ``.dir`` format (md5 of the sorted JSON entry list) so they compare with
dvc.lock directly.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

CACHE_FILE = ".mlopsctl/hashes.json"
_CHUNK = 4 * 1024 * 1024


def file_md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb", buffering=0) as fh:
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


class HashCache:
    """md5 of repo files, reusing earlier results for files whose stat did not change."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._path = root / CACHE_FILE
        self._entries: dict[str, list[int | str]] = {}
        self._dirty = False
        self.hashed: list[str] = []  # files read in this run (for tests and --debug)
        try:
            self._entries = json.loads(self._path.read_text("utf-8"))
        except (OSError, ValueError):
            self._entries = {}

    def md5(self, rel: str) -> str | None:
        """The DVC md5 of *rel* (a file or a directory), or None if it does not exist."""
        path = self.root / rel
        try:
            st = path.stat()
        except OSError:
            return None
        if os.path.isdir(path):
            return self._dir_md5(rel)
        return self._file_md5(rel, path, st)

    def _file_md5(self, rel: str, path: Path, st: os.stat_result) -> str:
        key = [st.st_ino, st.st_size, st.st_mtime_ns]
        entry = self._entries.get(rel)
        if entry is not None and entry[:3] == key:
            return str(entry[3])
        md5 = file_md5(path)
        self.hashed.append(rel)
        self._entries[rel] = [*key, md5]
        self._dirty = True
        return md5

    def _dir_md5(self, rel: str) -> str:
        entries = []
        base = self.root / rel
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in (".git", ".dvc"))
            for name in filenames:
                full = Path(dirpath) / name
                sub = full.relative_to(base).as_posix()
                entries.append(
                    {"md5": self._file_md5(f"{rel}/{sub}", full, full.stat()), "relpath": sub}
                )
        entries.sort(key=lambda e: e["relpath"])
        data = json.dumps(entries, sort_keys=True).encode("utf-8")
        return hashlib.md5(data, usedforsecurity=False).hexdigest() + ".dir"

    def remember(self, rel: str, md5: str) -> None:
        """Record the md5 of a file we just wrote (so the next plan need not read it)."""
        path = self.root / rel
        try:
            st = path.stat()
        except OSError:
            return
        if path.is_file():
            self._entries[rel] = [st.st_ino, st.st_size, st.st_mtime_ns, md5]
            self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_name(f".hashes.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._entries, sort_keys=True), "utf-8")
        os.replace(tmp, self._path)
        self._dirty = False
