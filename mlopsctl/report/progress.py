"""Progress of long work in a stage (tuning's cross-validation fits), relayed to apply's display.

A stage runs in another process (a pool worker, or a dask worker on another machine), so it
cannot draw on apply's terminal. It writes a small progress file instead
(``.mlopsctl/progress/<stage>.json``, replaced atomically, at most twice a second) and apply's
:func:`watch` thread reads them and shows them through the reporter: a rich progress bar on a
terminal, a plain line every ``MLOPSCTL_PROGRESS_INTERVAL`` seconds (default 10) elsewhere, so
that a CI log shows a long train moving. A file is the one channel that works for all three
executors (inline, process pool, dask over shared storage) and survives a killed worker.

Imports nothing heavy and nothing of ours but the atomic writer: stages use :class:`Progress`,
the apply loop uses :func:`watch`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsctl.fsutil import atomic_write

PROGRESS_DIR = ".mlopsctl/progress"
INTERVAL_ENV = "MLOPSCTL_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 10.0  # seconds between plain progress lines (CI logs)
WRITE_EVERY = 0.5  # seconds: the most often a stage rewrites its progress file


def interval() -> float:
    """Seconds between two plain progress lines of a stage (``MLOPSCTL_PROGRESS_INTERVAL``)."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL


@dataclass(frozen=True)
class Snapshot:
    """How far one stage's long work has come."""

    stage_id: str
    what: str  # e.g. "tuning"
    unit: str  # e.g. "fits"
    done: int
    total: int
    started: float  # epoch seconds

    def eta(self, now: float) -> float | None:
        """Seconds left at the rate so far; None before the first unit is done."""
        if self.done <= 0 or self.total <= 0:
            return None
        return max(0.0, (now - self.started) * (self.total - self.done) / self.done)

    def text(self, now: float) -> str:
        """``tuning 12/40 fits (30%), ETA 1m05s``."""
        pct = 100 * self.done // self.total if self.total else 0
        eta = self.eta(now)
        tail = f", ETA {duration(eta)}" if eta is not None and self.done < self.total else ""
        return f"{self.what} {self.done}/{self.total} {self.unit} ({pct}%){tail}"

    def line(self, now: float) -> str:
        return f"{self.stage_id}: {self.text(now)}"


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _path(root: Path, stage_id: str) -> Path:
    return root / PROGRESS_DIR / (stage_id.replace("/", "_") + ".json")


class Progress:
    """In a stage: report *done* of *total* units of long work (see the module doc)."""

    def __init__(self, root: Path, stage_id: str, total: int, what: str, unit: str) -> None:
        self.path = _path(root, stage_id)
        self.stage_id, self.total, self.what, self.unit = stage_id, total, what, unit
        self.started = time.time()
        self._last = 0.0
        self._done = -1
        self._lock = threading.Lock()  # joblib may report from its callback threads

    def update(self, done: int) -> None:
        """Record that *done* units are complete (written at most every WRITE_EVERY s)."""
        with self._lock:
            done = min(done, self.total)
            now = time.monotonic()
            if done <= self._done or (done < self.total and now - self._last < WRITE_EVERY):
                return
            self._done, self._last = done, now
            doc = {
                "stage": self.stage_id,
                "what": self.what,
                "unit": self.unit,
                "done": done,
                "total": self.total,
                "started": self.started,
            }
            with contextlib.suppress(OSError):  # progress is a courtesy, never a failure
                self.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(self.path, json.dumps(doc, sort_keys=True))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)


def read_all(root: Path) -> list[Snapshot]:
    """Every stage's progress now (unreadable or torn files are skipped)."""
    out = []
    try:
        paths = sorted((root / PROGRESS_DIR).glob("*.json"))
    except OSError:
        return []
    for path in paths:
        try:
            d: dict[str, Any] = json.loads(path.read_text("utf-8"))
            out.append(
                Snapshot(
                    str(d["stage"]),
                    str(d["what"]),
                    str(d["unit"]),
                    int(d["done"]),
                    int(d["total"]),
                    float(d["started"]),
                )
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


class Watcher:
    """In the applying process: a thread that shows the stages' progress files through *show*,
    each stage at most every *every* seconds (and not before *every* seconds of its work)."""

    def __init__(self, root: Path, show: Callable[[Snapshot], None], every: float) -> None:
        self.root, self.show, self.every = root, show, every
        self._stop = threading.Event()
        self._shown: dict[str, float] = {}  # stage -> when last shown
        self._thread = threading.Thread(target=self._run, name="mlopsctl-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.wait(min(0.5, self.every)):
            now = time.monotonic()
            for snap in read_all(self.root):
                # the first line after *every* seconds of watching it, then one per *every*
                when = self._shown.setdefault(snap.stage_id, now)
                if now - when >= self.every:
                    self._shown[snap.stage_id] = now
                    with contextlib.suppress(Exception):  # a display error never stops apply
                        self.show(snap)


@contextlib.contextmanager
def watch(root: Path, reporter: Any) -> Iterator[None]:
    """Relay stage progress to *reporter* (its ``progress(snapshot)``) while the block runs."""
    show = getattr(reporter, "progress", None)
    if show is None:
        yield
        return
    every = float(getattr(reporter, "progress_interval", 0) or interval())
    folder = root / PROGRESS_DIR
    shutil.rmtree(folder, ignore_errors=True)  # what a killed run left
    watcher = Watcher(root, show, every)
    watcher.start()
    try:
        yield
    finally:
        watcher.stop()
        shutil.rmtree(folder, ignore_errors=True)
