"""Atomic, durable file writes: the one helper every file that lands in the repository uses."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: Path, data: bytes | str, *, encoding: str = "utf-8") -> None:
    """Write *data* to *path* whole or not at all: temp file beside it, fsync, rename.

    The file gets the mode a plain ``open(path, "w")`` would give it (0o666 less the umask);
    on any error, interruption included, the temp file is removed and *path* is untouched.
    """
    path = Path(path)
    blob = data.encode(encoding) if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
