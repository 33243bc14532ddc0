"""The project lock: one apply at a time, with a holder record a person can read.

``.mlopsctl/apply.lock`` is locked with ``flock(2)``. The kernel drops that lock when its holder
exits, however it exits (SIGKILL included), so a lock is never stale and two appliers can never
both win a race to take over a dead one's lock. The file's content is only a record for people
and error messages: the holder's pid, host, start time and command. A record still there when we
get the lock was left by a holder that died without releasing it; we say so and take over.

Holding the lock also means that nobody else uses ``.mlopsctl/tmp``: apply's pre-flight removes
what a killed apply left there, and the lock removes what an interrupted one leaves on release.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mlopsctl.errors import LockHeldError
from mlopsctl.interrupts import deferred

LOCK_FILE = ".mlopsctl/apply.lock"
STAGING_DIR = ".mlopsctl/tmp"

log = logging.getLogger(__name__)


def _describe(info: dict[str, object]) -> str:
    started = info.get("started", 0)
    try:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(started)))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        when = "at an unknown time"
    command = info.get("command")
    text = f"pid {info.get('pid')} on {info.get('host')}, started {when}"
    return f"{text}: {command}" if command else text


def _read_record(fd: int) -> dict[str, object]:
    try:
        info = json.loads(os.pread(fd, 65536, 0) or b"null")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _holder(fd: int) -> dict[str, object]:
    """The record of the process that holds the lock (it writes it right after locking)."""
    for _ in range(40):
        info = _read_record(fd)
        if info:
            return info
        time.sleep(0.025)
    return {}


def _acquire(path: Path) -> int:
    """An fd of *path* holding an exclusive flock; raises LockHeldError when another has it."""
    for _attempt in range(100):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _holder(fd)
            os.close(fd)
            who = _describe(info) if info else "its holder has not written its record yet"
            raise LockHeldError(
                f"another apply holds the lock ({who}); wait for it to finish "
                f"(the lock is released when that process exits)"
            ) from None
        # A holder unlinks the file before it unlocks: if ours is no longer the file at *path*,
        # we locked an orphan, and whoever opens *path* next would lock another file. Retry.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
            return fd
        os.close(fd)
    raise LockHeldError(f"could not take the lock {LOCK_FILE}: it keeps being replaced")


def clean_staging(root: Path) -> None:
    """Remove ``.mlopsctl/tmp`` (call only while holding the lock)."""
    shutil.rmtree(root / STAGING_DIR, ignore_errors=True)


@contextlib.contextmanager
def project_lock(root: Path, warn: Callable[[str], None] = print) -> Iterator[None]:
    """Hold the project lock for the duration of the block; fail at once if another holds it."""
    path = root / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path)
    try:
        previous = _read_record(fd)
        if previous:
            warn(f"taking over the lock left by a process that is gone ({_describe(previous)})")
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "command": " ".join(["mlopsctl", *sys.argv[1:]])[:300],
        }
        data = json.dumps(me).encode("utf-8")
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        log.debug("lock taken: %s (pid %d)", path, os.getpid())
        try:
            yield
        finally:
            with deferred():  # a second ^C must not leave the cleanup half done
                clean_staging(root)  # an interrupted apply's stopped workers leave theirs
    finally:
        with deferred():
            # unlink while still holding it, so that a waiter on this file retries on a fresh one
            with contextlib.suppress(OSError):
                path.unlink()
            os.close(fd)
        log.debug("lock released: %s", path)
