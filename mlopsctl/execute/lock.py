"""The project lock: one apply at a time, with a holder record a person can read.

``.mlopsctl/apply.lock`` is created with O_EXCL and holds the holder's pid, host and start time.
A lock whose holder process is gone (same host, pid not alive) is taken over with a warning.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mlopsctl.errors import LockHeldError

LOCK_FILE = ".mlopsctl/apply.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(info: dict[str, object]) -> str:
    started = info.get("started", 0)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(started)))  # type: ignore[arg-type]
    return f"pid {info.get('pid')} on {info.get('host')}, started {when}"


@contextlib.contextmanager
def project_lock(root: Path, warn: Callable[[str], None] = print) -> Iterator[None]:
    path = root / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.time(),
        "command": "apply",
    }
    for _attempt in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                info = json.loads(path.read_text("utf-8"))
            except (OSError, ValueError):
                info = {}
            pid = info.get("pid")
            same_host = info.get("host") == socket.gethostname()
            if isinstance(pid, int) and same_host and not _alive(pid):
                warn(f"taking over the lock left by a process that is gone ({_describe(info)})")
                path.unlink(missing_ok=True)
                continue
            if not info:  # being written right now, or garbage: wait a moment
                time.sleep(0.2)
                if path.exists() and not path.read_text("utf-8").strip():
                    path.unlink(missing_ok=True)
                continue
            raise LockHeldError(
                f"another apply holds the lock ({_describe(info)}); "
                f"wait for it, or delete {LOCK_FILE} if that process is gone"
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(me, fh)
        break
    else:
        raise LockHeldError(f"could not take the lock {LOCK_FILE}")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            current = json.loads(path.read_text("utf-8"))
            if current.get("pid") == os.getpid():
                path.unlink()
