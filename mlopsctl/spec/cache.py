"""Spec files that passed the schema before, keyed by (inode, size, mtime_ns): not re-read.

A no-op ``plan`` should cost little more than starting Python: re-parsing and re-validating
unchanged specs (and importing jsonschema to do it) was most of its time. The cache holds the
parsed document of every spec file that passed the schema; it is dropped whole when mlopsctl,
a schema or mlopsctl.yaml changes. Semantic checks (which look at the workspace) always run.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

CACHE_FILE = ".mlopsctl/specs.json"


def _stat_key(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


class SpecCache:
    def __init__(self, root: Path, project_file: str) -> None:
        self._path = root / CACHE_FILE
        schemas = resources.files("mlopsctl").joinpath("schemas")
        code = sorted(Path(__file__).parent.glob("*.py"))  # the spec layer's own code
        self.key = [
            [[p.name, _stat_key(p)] for p in code],
            [
                _stat_key(Path(str(schemas.joinpath(n))))
                for n in ("usecase.schema.json", "project.schema.json")
            ],
            _stat_key(root / project_file),
        ]
        self._files: dict[str, list[Any]] = {}
        self._dirty = False
        try:
            data = json.loads(self._path.read_text("utf-8"))
            if data.get("key") == self.key:
                self._files = data["files"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self._files = {}

    def get(self, path: Path) -> Any | None:
        """The document of *path* if it passed the schema and has not changed since."""
        entry = self._files.get(str(path))
        if entry is None or entry[0] != _stat_key(path):
            return None
        return entry[1]

    def put(self, path: Path, document: Any) -> None:
        stat = _stat_key(path)
        if stat is not None:
            self._files[str(path)] = [stat, document]
            self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_name(f".specs.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"key": self.key, "files": self._files}), "utf-8")
            os.replace(tmp, self._path)
        except OSError:  # a read-only checkout still plans, only slower
            return
        self._dirty = False
