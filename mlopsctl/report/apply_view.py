"""What apply shows while it works: a rich progress display on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import Any

from mlopsctl.report.progress import Snapshot
from mlopsctl.results import ApplyResult, Outcome, Reporter

_STYLE = {
    "ran": "green",
    "restored": "cyan",
    "recovered": "cyan",
    "up-to-date": "dim",
    "failed": "red bold",
    "blocked": "red",
    "removed": "yellow",
}


class PlainReporter(Reporter):
    progress_interval = 0.0  # a progress line per MLOPSCTL_PROGRESS_INTERVAL (report/progress.py)

    def __init__(self, quiet: bool = False) -> None:
        from mlopsctl.report.console import console

        self.out = console(stderr=quiet)
        self.err = console(stderr=True)

    def started(self, stage_id: str, what: str) -> None:
        pass

    def finished(self, outcome: Outcome) -> None:
        if outcome.status == "up-to-date" and not outcome.message:
            return
        self.out.print(_line(outcome), style=_STYLE.get(outcome.status), markup=False)

    def info(self, message: str) -> None:
        self.out.print(message, markup=False)

    def progress(self, snap: Snapshot) -> None:
        """A stage's long work (tuning fits), as one line with its ETA: for CI logs."""
        self.out.print(snap.line(time.time()), style="dim", markup=False)

    def warn(self, message: str) -> None:
        self.err.print(f"warning: {message}", style="yellow", markup=False)


class RichReporter(PlainReporter):
    """A spinner and elapsed time per running stage, above the finished lines; a bar for a
    stage that reports its progress (tuning)."""

    progress_interval = 0.25

    def __init__(self) -> None:
        super().__init__()
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bars = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=self.out,
            transient=True,
        )
        self.tasks: dict[str, Any] = {}
        self.bars.start()

    def started(self, stage_id: str, what: str) -> None:
        verb = "restoring" if what == "restore" else "running"
        self.tasks[stage_id] = self.bars.add_task(f"{verb} {stage_id}", total=None)

    def finished(self, outcome: Outcome) -> None:
        task = self.tasks.pop(outcome.stage_id, None)
        if task is not None:
            self.bars.remove_task(task)
        super().finished(outcome)

    def progress(self, snap: Snapshot) -> None:
        task = self.tasks.get(snap.stage_id)
        if task is not None:
            text = f"running {snap.stage_id}: {snap.text(time.time())}"
            self.bars.update(task, total=snap.total, completed=snap.done, description=text)

    def close(self) -> None:
        self.bars.stop()


def make_reporter(quiet: bool = False) -> PlainReporter:
    if not quiet and sys.stdout.isatty():
        return RichReporter()
    return PlainReporter(quiet=quiet)


def _line(o: Outcome) -> str:
    secs = f" ({o.seconds:.1f}s)" if o.seconds >= 0.05 else ""
    first, *rest = o.message.splitlines() or [""]
    if first.startswith(o.status + " "):  # "restored from cache": do not repeat the status
        head = f"{o.stage_id}: {first}{secs}"
    elif first.startswith("from "):  # where a restore came from continues the status word
        head = f"{o.stage_id}: {o.status} {first}{secs}"
    else:
        head = f"{o.stage_id}: {o.status}{secs}" + (f": {first}" if first else "")
        alert = o.summary.get("alert") if isinstance(o.summary, dict) else None
        if alert and not first:  # a stage that passed but has news: a monitoring breach
            head += f": {alert}"
    return head + "".join(f"\n    {line}" for line in rest)


def headline(message: str) -> str:
    """A message in one line: its first line, and when that ends with a colon (it introduces
    the details, as a failed gate's does), the details after it."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} " + "; ".join(lines[1:])
    return lines[0]


def summary(result: ApplyResult) -> str:
    counts: dict[str, int] = {}
    for o in result.outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    order = ("ran", "restored", "recovered", "up-to-date", "removed", "failed", "blocked")
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    text = "Apply: " + (", ".join(parts) if parts else "nothing to do") + "."
    if result.failed:
        text += "\nFailed:\n" + "\n".join(
            f"  {o.stage_id}: {headline(o.message) or o.status}" for o in result.failed
        )
    return text
