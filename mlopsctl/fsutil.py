"""Atomic file writes: the one helper every file that lands in the repository goes through.

A leaf module (it imports nothing of ours), so that every layer, the spec layer included, may
use it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# What open(path, "w") asks of the kernel; the kernel then applies the umask (and a directory's
# default ACL), so a new file gets exactly the mode a normal write would give it.
_NEW_FILE_MODE = 0o666


def atomic_write(
    path: Path | str, data: bytes | str, *, encoding: str = "utf-8", durable: bool = True
) -> None:
    """Write *data* to *path* atomically: readers see the old file or the new one, never half.

    The data goes to a temporary file in the same directory (same file system), is flushed and
    fsynced, and then replaces *path* with ``os.replace``. A new file gets the mode a normal
    write gives it (``0o666 & ~umask``); an existing regular file keeps its mode, as with a
    normal write. On any error, KeyboardInterrupt included, the temporary file is removed and
    *path* is left as it was. A symlink at *path* is replaced, never written through.

    ``durable=False`` skips the fsync, for mlopsctl's own caches under ``.mlopsctl/`` only: a
    crash may then leave the old file or an empty one, which every cache reads as "no entry"
    (each fsync cost a cold plan ~5-10 ms on this machine's disk, three times).
    """
    path = Path(path)
    payload = data.encode(encoding) if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        try:
            old = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            old = None
        if old is not None and stat.S_ISREG(old.st_mode):
            os.fchmod(fd, stat.S_IMODE(old.st_mode))
        with os.fdopen(fd, "wb") as fh:
            fd = -1  # the file object owns it now
            fh.write(payload)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd != -1:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise


def _create_temp(path: Path) -> tuple[int, Path]:
    """Create a new, hidden, uniquely named file next to *path*; returns (fd, its path)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        # the name is cut so that the temp name stays within the file system's name limit
        tmp = path.with_name(f".{path.name[:200]}.{os.urandom(4).hex()}.tmp")
        try:
            return os.open(tmp, flags, _NEW_FILE_MODE), tmp
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
