"""The scratch git worktree that `mlopsctl verify` checks a revision out into.

``git worktree add --detach`` touches neither the user's working tree nor its index; it only
adds an entry under ``.git/worktrees``, which ``git worktree remove`` and ``prune`` take away
again. The entry is locked with the pid of the verify that made it, so that a later verify can
tell the scratch tree of a verify that was SIGKILLed (and remove it) from one still running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlopsctl.errors import GitError

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "mlopsctl-verify-"
_REASON = "mlopsctl verify scratch worktree:"


def _git(repo: Any, *args: str) -> str:
    from mlopsctl.integrations.git import describe_command_error

    try:
        return str(repo.git.execute(["git", *args]))
    except Exception as exc:
        if type(exc).__name__ != "GitCommandError":
            raise
        raise GitError(describe_command_error(exc)) from exc


def resolve_commit(repo: Any, rev: str) -> str:
    """The full sha of the commit *rev* names; one clear GitError otherwise."""
    if not rev or rev.startswith("-"):
        raise GitError(f"'{rev}' is not a revision")
    try:
        return _git(
            repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"
        )
    except GitError:
        raise GitError(
            f"unknown revision '{rev}': no commit of that name in this repository"
        ) from None


def has_file(repo: Any, commit: str, path: str) -> bool:
    try:
        _git(repo, "cat-file", "-e", f"{commit}:{path}")
    except GitError:
        return False
    return True


@contextlib.contextmanager
def scratch_worktree(repo: Any, commit: str) -> Iterator[Path]:
    """*commit* checked out (detached) in a temporary directory; removed afterwards, even on
    an error or an interruption."""
    from mlopsctl.interrupts import deferred

    remove_stale_worktrees(repo)
    base = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    path = base / "worktree"
    try:
        _git(repo, "worktree", "add", "--detach", "--quiet", str(path), commit)
        _git(repo, "worktree", "lock", "--reason", _lock_reason(os.getpid()), str(path))
        yield path
    finally:
        with deferred():  # a second ^C must not leave the worktree registered
            _remove_worktree(repo, path)


def _lock_reason(pid: int) -> str:
    return f"{_REASON} pid {pid} on {socket.gethostname()}"


def _remove_worktree(repo: Any, path: Path) -> None:
    with contextlib.suppress(GitError):
        _git(repo, "worktree", "unlock", str(path))
    with contextlib.suppress(GitError):
        _git(repo, "worktree", "remove", "--force", str(path))
    if path.parent.name.startswith(SCRATCH_PREFIX):
        shutil.rmtree(path.parent, ignore_errors=True)
    with contextlib.suppress(GitError):
        _git(repo, "worktree", "prune")


def remove_stale_worktrees(repo: Any) -> list[Path]:
    """Remove the scratch worktrees of verify runs that are gone (killed); return them."""
    try:
        listing = _git(repo, "worktree", "list", "--porcelain")
    except GitError:
        return []
    stale = []
    for block in listing.split("\n\n"):
        fields = dict(line.partition(" ")[::2] for line in block.splitlines() if line)
        reason = fields.get("locked", "")
        if not reason.startswith(_REASON) or "worktree" not in fields:
            continue
        words = reason[len(_REASON) :].split()  # "pid N on HOST"
        if len(words) != 4 or words[2] != "on" or words[3] != socket.gethostname():
            continue
        with contextlib.suppress(ValueError):
            if not _alive(int(words[1])):
                stale.append(Path(fields["worktree"]))
    for path in stale:
        log.debug("removing the scratch worktree of a verify that is gone: %s", path)
        _remove_worktree(repo, path)
    with contextlib.suppress(GitError):
        _git(repo, "worktree", "prune")
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
