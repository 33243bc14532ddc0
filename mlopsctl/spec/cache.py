"""Spec files that passed every check that depends on their bytes alone: not re-read, not re-parsed.

A no-op ``plan`` should cost little more than starting Python: re-parsing and re-validating
unchanged specs (and importing jsonschema to do it) was most of its time. The cache remembers
only a *complete* success: a file whose YAML parsed without a single problem (no duplicate key,
no nesting or alias limit hit, no bad tag) and passed the schema. An entry is keyed by the md5 of
the file's bytes; the file's stat (device, inode, size, mtime_ns, ctime_ns) is a shortcut that
skips reading it when unchanged. The whole cache is dropped when the mlopsctl version, the spec
layer's code, a schema or the bytes of mlopsctl.yaml (whose defaults the schema check of a use
case sees) change. Semantic checks (which look at the workspace) always run.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from mlopsctl.fsutil import atomic_write
from mlopsctl.spec.paths import UnsafePathError, inside_repo

CACHE_FILE = ".mlopsctl/specs.json"


def stat_key(path: Path) -> list[int] | None:
    """The stat shortcut of *path*, or None for anything but a regular file (a symlink's own
    stat says nothing about the file it points to, so a link is always re-read)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return key_of(st)


def key_of(st: os.stat_result) -> list[int] | None:
    if not stat.S_ISREG(st.st_mode):
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def content_md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class SpecCache:
    def __init__(self, root: Path, project_md5: str) -> None:
        self._root = root
        self._path = root / CACHE_FILE
        # the package's schema files (importlib.resources would cost ~7 ms of imports here)
        schemas = Path(__file__).resolve().parent.parent / "schemas"
        code = sorted(Path(__file__).parent.glob("*.py"))  # the spec layer's own code
        # the package's version, without importing the package from this layer (it is loaded
        # already: Python imports a parent package before any of its modules)
        version = getattr(sys.modules[__name__.split(".")[0]], "__version__", "")
        self.key = [
            version,
            [[p.name, stat_key(p)] for p in code],
            [
                content_md5(schemas.joinpath(n).read_bytes())
                for n in ("usecase.schema.json", "project.schema.json")
            ],
            project_md5,
        ]
        self._files: dict[str, list[Any]] = {}
        self._dirty = False
        try:
            inside_repo(root, CACHE_FILE)  # a committed `.mlopsctl` symlink is not followed
            data = json.loads(self._path.read_text("utf-8"))
            if data.get("key") == self.key:
                self._files = data["files"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError, UnsafePathError):
            self._files = {}

    def unchanged(self, path: Path) -> Any | None:
        """The document of *path* if it validated before and its stat did not change since."""
        entry = self._files.get(str(path))
        key = stat_key(path)
        if entry is None or key is None or entry[0] != key:
            return None
        return entry[2]

    def get(self, path: Path, md5: str, key: list[int] | None) -> Any | None:
        """The document of *path* if exactly these bytes (by md5) validated before.

        *key* is the stat of the file the bytes were read from (fstat of its descriptor).
        """
        entry = self._files.get(str(path))
        if entry is None or entry[1] != md5:
            return None
        if key != entry[0]:  # same bytes, new stat (a checkout): the shortcut works again
            self._files[str(path)] = [key, md5, entry[2]]
            self._dirty = True
        return entry[2]

    def put(self, path: Path, md5: str, key: list[int] | None, document: Any) -> None:
        """Remember that the bytes *md5* (read from a file of stat *key*) passed the parse and
        schema checks."""
        self._files[str(path)] = [key, md5, document]
        self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        try:
            inside_repo(self._root, CACHE_FILE)
            atomic_write(
                self._path, json.dumps({"key": self.key, "files": self._files}), durable=False
            )
        except (OSError, UnsafePathError):  # read-only checkout, or `.mlopsctl` leads out
            return
        self._dirty = False
