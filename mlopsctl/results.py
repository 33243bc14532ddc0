"""What apply produced: one Outcome per stage, the ApplyResult, and the Reporter interface.

Values only, imported by the apply loop (execute/) and by the views (report/), which both look
down to this module; nothing here runs or renders anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Outcome:
    """What happened to one stage during apply."""

    stage_id: str
    status: str  # ran | restored | recovered | up-to-date | failed | blocked | removed
    message: str = ""
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0  # epoch seconds; 0 when nothing ran
    outs: dict[str, str] = field(default_factory=dict)  # what it landed: path -> md5


@dataclass
class ApplyResult:
    outcomes: list[Outcome]
    commit: str | None = None
    pushed: int | None = None
    plan_id: str = ""

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in ("failed", "blocked")]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "commit": self.commit,
            "pushed": self.pushed,
            "ok": not self.failed,
            "stages": [
                {
                    "id": o.stage_id,
                    "status": o.status,
                    "message": o.message,
                    "seconds": round(o.seconds, 3),
                    "started": round(o.started, 3),
                    "summary": o.summary,
                }
                for o in self.outcomes
            ],
        }


class Reporter:
    """How apply tells the user what happens; the CLI supplies a rich or a plain one."""

    def started(self, stage_id: str, what: str) -> None: ...

    def finished(self, outcome: Outcome) -> None: ...

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...
