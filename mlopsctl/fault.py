"""Named kill points for the crash-consistency tests (``tests/integration/test_kill_harness.py``).

``MLOPSCTL_KILL_AT=NAME`` (or ``NAME:N`` for the N-th time that point is reached) makes the
process SIGKILL itself at that point, the way a power cut or an OOM kill would stop it. Unset,
as it always is outside the tests, a point costs one dictionary lookup. SIGKILL cannot be
caught, so nothing in mlopsctl can tidy up after it: the tests prove that the next run copes.
"""

from __future__ import annotations

import os
import signal

ENV = "MLOPSCTL_KILL_AT"
_hits: dict[str, int] = {}

#: every point in the apply path, in the order an apply reaches them
POINTS = (
    "stage-running",  # a stage is running in a worker
    "journaled",  # a stage finished and is in the journal, not yet in dvc.lock
    "source-write",  # a changed source's object is cached, its .dvc not yet rewritten
    "lock-write",  # the DVC cache holds the new outputs, dvc.lock not yet written
    "recorded",  # dvc.lock written, run-cache and journal not yet updated
    "push",  # during the push to the DVC remote
    "commit",  # git has staged the apply's files, the commit is not made yet
    "tag",  # the apply commit is made, its version/deployment tags not yet
)


def point(name: str) -> None:
    """SIGKILL this process here when the test harness asked for *name*."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    target, _, nth = wanted.partition(":")
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
