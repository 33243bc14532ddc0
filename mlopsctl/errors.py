"""The one small hierarchy of user-facing errors.

Every error a user can cause is a :class:`MlopsctlError`; the CLI prints its message (no
traceback) and exits with its ``exit_code``. Anything else escaping is a bug.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One located problem in a file: ``file:line:col: key.path: message``."""

    file: str
    line: int
    column: int
    path: str
    message: str
    hint: str = field(default="", compare=False)

    def format(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
        }


class MlopsctlError(Exception):
    """Base of every error caused by user input or the user's environment."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SpecError(MlopsctlError):
    """One or more problems in spec files, all reported together."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(sorted(diagnostics))
        super().__init__("\n".join(d.format() for d in self.diagnostics))


class ProjectNotFoundError(MlopsctlError):
    """No mlopsctl.yaml in the directory (or its parents)."""


class StateError(MlopsctlError):
    """dvc.lock, the journal or the workspace is in a state we cannot work from."""


class PlanStaleError(MlopsctlError):
    """A saved plan no longer matches the repository it was computed from."""


class LockHeldError(MlopsctlError):
    """Another apply holds the project lock."""


class StageFailedError(MlopsctlError):
    """A stage failed; raised inside a stage run and reported per stage by apply.

    ``outputs_valid`` says the stage's staged outputs describe the failure and must still land
    (a failed gate's verdict, a failed data check's report); the stage is never recorded as
    applied either way.
    """

    outputs_valid = False


class DataCheckError(StageFailedError):
    """A data validation rule failed."""

    outputs_valid = True


class GateFailedError(StageFailedError):
    """The quality gate did not pass."""

    outputs_valid = True


class GitError(MlopsctlError):
    """Git is missing, misconfigured (no identity) or refused the operation."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"did you mean 'x'?"`` for the closest of *choices*, or ``""``."""
    import difflib

    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else ""
