"""`mlopsctl monitor`: the monitor stage's check, on demand, against any batch file.

Nothing here touches dvc.lock, git or the committed reports: the stage (apply) records verdicts;
this only reads the reference profile and the model that apply left in the workspace.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlopsctl.errors import MlopsctlError
from mlopsctl.spec.loader import find_project_root, load_project

if TYPE_CHECKING:
    from mlopsctl.monitor.check import MonitorResult


class MonitorBreachError(MlopsctlError):
    """A monitoring threshold was breached (exit code 3)."""

    exit_code = 3


def monitor_directory(
    directory: Path, usecases: tuple[str, ...] = (), data: Path | None = None
) -> list[MonitorResult]:
    """Check the batch of each selected use case (default: every use case with ``monitoring``).

    *data* replaces ``monitoring.current``; with several use cases in the project it needs one
    named, since a batch belongs to one model.
    """
    from mlopsctl.stages.monitor import check_usecase

    root = find_project_root(directory)
    project = load_project(root)
    project.require_usecases(usecases)
    known = [uc.name for uc in project.usecases]
    if usecases:
        selected = [project.usecase(n).spec for n in dict.fromkeys(usecases)]
    elif data is not None and len(known) == 1:
        selected = [project.usecases[0].spec]
    elif data is not None:
        raise MlopsctlError(f"--data: name the use case it belongs to with -u ({', '.join(known)})")
    else:
        selected = [uc.spec for uc in project.usecases if uc.spec.monitoring is not None]
        if not selected:
            raise MlopsctlError(
                "no use case has a monitoring section: add one, or pass --data PATH with -u NAME"
            )
    results = []
    allowed = project.config.allowed_estimator_modules
    for uc in selected:
        if data is not None:
            batch = data
        elif uc.monitoring is None or uc.monitoring.current.path is None:
            raise MlopsctlError(
                f"use case '{uc.name}' has no monitoring.current file: pass --data PATH"
            )
        else:
            batch = _inside(root, uc.monitoring.current.path)
        if not batch.is_file():
            raise MlopsctlError(f"the batch {batch} does not exist")
        results.append(check_usecase(root, uc, batch, allowed))
    return results


def _inside(root: Path, rel: str) -> Path:
    """*rel* under *root*; a spec's path (or a symlink in it) never leads outside the repo."""
    path = (root / rel).resolve()
    if not path.is_relative_to(root.resolve()):
        raise MlopsctlError(f"monitoring.current: {rel} is outside the repository")
    return path
