"""What the DVC remote holds of the applied state, for `mlopsctl status`."""

from __future__ import annotations

from mlopsctl.errors import StateError
from mlopsctl.plan.api import Planned
from mlopsctl.plan.status import UseCaseStatus, usecase_status, with_push_state


def push_state(planned: Planned) -> tuple[list[UseCaseStatus], str]:
    """Each use case's status with the files the remote lacks, and a note when it cannot tell.

    The note is empty when the remote was read; otherwise it says why the push state is unknown
    (no remote configured, or the remote cannot be read).
    """
    from mlopsctl.integrations import dvc

    root = planned.project.root
    statuses = usecase_status(planned)
    name = planned.project.config.remote
    remote = dvc.remote_configured(root, name)
    if remote is None:
        if any(s.state != "never applied" for s in statuses):
            return statuses, "push state unknown: no DVC remote is configured"
        return statuses, ""
    try:
        missing = dvc.not_pushed(root, remote)
    except StateError as exc:
        return statuses, f"push state unknown: {exc.message}"
    return with_push_state(planned, statuses, missing), ""
