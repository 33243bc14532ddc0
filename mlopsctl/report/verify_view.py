"""`mlopsctl verify` as text: a table per use case and stage, and its progress while it works.

The table is drawn from the stable JSON form (``VerifyResult.to_dict()``, documented in
docs/usage.md), so that this view decides nothing and imports nothing of the verifier.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from mlopsctl.results import Outcome, Reporter

_ORDER = ("reproduced", "nondeterministic", "diverged", "failed", "blocked")
_STYLE = {
    "reproduced": "green",
    "nondeterministic": "yellow",
}


def verify_lines(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(style, text) lines for :func:`mlopsctl.report.console.print_lines`."""
    tol = f", tolerance {result['tolerance']:g}" if result["tolerance"] else ""
    lines: list[tuple[str, str]] = [
        (
            "bold",
            f"verify {result['rev']} ({result['commit'][:10]}) against DVC remote "
            f"'{result['remote']}'{tol}",
        )
    ]
    stages = result["stages"]
    width = max((len(s["stage"]) for s in stages), default=0)
    vwidth = max((len(s["verdict"]) for s in stages), default=0)
    usecase = None
    for s in stages:
        if s["usecase"] != usecase:
            usecase = s["usecase"]
            lines.append(("", usecase))
        message = _first_line(s["message"])
        text = f"  {s['stage'].ljust(width)}  {s['verdict'].ljust(vwidth)}  {message}".rstrip()
        lines.append((_STYLE.get(s["verdict"], "red"), text))
        lines += [("dim", f"  {' ' * width}  note: {note}") for note in s["notes"]]
    if result["not_recorded"]:
        lines.append(
            (
                "dim",
                "not in dvc.lock at this revision (not run): " + ", ".join(result["not_recorded"]),
            )
        )
    counts = result["counts"]
    shown = sorted(counts, key=lambda v: (_ORDER.index(v) if v in _ORDER else len(_ORDER), v))
    parts = ", ".join(f"{counts[v]} {v}" for v in shown)
    if result["ok"]:
        lines.append(("green", f"Verify: {parts}. {result['rev']} is reproduced."))
    else:
        lines.append(("red bold", f"Verify: {parts}. {result['rev']} is NOT reproduced."))
    return lines


def _first_line(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[0] if lines else ""


class VerifyProgress(Reporter):
    """What verify is doing, on stderr (stdout carries the table or the JSON): a spinner per
    running stage on a terminal, plain lines elsewhere."""

    def __init__(self) -> None:
        from mlopsctl.report.console import console

        self.err = console(stderr=True)
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}
        if sys.stderr.isatty():
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self.err,
                transient=True,
            )
            self.progress.start()

    def started(self, stage_id: str, what: str) -> None:
        if self.progress is not None:
            self.tasks[stage_id] = self.progress.add_task(f"re-running {stage_id}", total=None)
        else:
            self.err.print(f"re-running {stage_id}", markup=False)

    def finished(self, outcome: Outcome) -> None:
        task = self.tasks.pop(outcome.stage_id, None)
        if task is not None:
            self.progress.remove_task(task)
        secs = f" ({outcome.seconds:.1f}s)" if outcome.seconds >= 0.05 else ""
        message = _first_line(outcome.message)
        text = f"{outcome.stage_id}: {outcome.status}{secs}" + (f": {message}" if message else "")
        self.err.print(text, markup=False, style="dim" if outcome.status == "ran" else "red")

    def info(self, message: str) -> None:
        self.err.print(message, markup=False, style="dim")

    def warn(self, message: str) -> None:
        self.err.print(f"warning: {message}", style="yellow", markup=False)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
