"""git through GitPython: init, status of spec files, and the apply commit.

Every git failure that reaches a user is a :class:`GitError` with git's own message on one line;
a leftover ``index.lock`` (a git process killed mid-commit) is reported before apply does any
work, with how to fix it.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mlopsctl.errors import GitError

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def _git() -> Any:
    try:
        import git
    except ImportError as exc:  # GitPython raises ImportError when the git binary is missing
        raise GitError(f"git is not available: {exc}") from exc
    return git


def describe_command_error(exc: BaseException) -> str:
    """``git SUBCOMMAND failed (exit N): git's error`` on one line, for a GitCommandError."""
    command = getattr(exc, "command", None) or []
    if isinstance(command, str):
        command = command.split()
    sub = next((str(a) for a in list(command)[1:] if not str(a).startswith("-")), "")
    stderr = str(getattr(exc, "stderr", "") or "").strip()
    # GitPython wraps git's stderr as "\n  stderr: '...'"
    if stderr.startswith("stderr:"):
        stderr = stderr[len("stderr:") :].strip()
    stderr = stderr.strip("'").strip()
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    important = [line for line in lines if line.startswith(("fatal:", "error:"))]
    detail = " ".join(important or lines[:1]) or str(exc).splitlines()[0]
    status = getattr(exc, "status", None)
    code = f" (exit {status})" if isinstance(status, int) else ""
    return f"git {sub} failed{code}: {detail}".replace("git  failed", "git failed")


def _git_errors(fn: F) -> F:
    """Turn a GitCommandError escaping *fn* into a GitError with git's message on one line."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GitError:
            raise
        except Exception as exc:
            if type(exc).__name__ != "GitCommandError":
                raise
            raise GitError(describe_command_error(exc)) from exc

    return wrapper  # type: ignore[return-value]


@_git_errors
def ensure_repo(root: Path) -> bool:
    """``git init`` unless *root* is inside a work tree. Returns True when it created one."""
    git = _git()
    try:
        git.Repo(root, search_parent_directories=True)
        return False
    except git.InvalidGitRepositoryError:
        git.Repo.init(root)
        return True


def open_repo(root: Path) -> Any:
    git = _git()
    try:
        return git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise GitError(f"{root} is not inside a git repository (run `mlopsctl init`)") from exc


@_git_errors
def dirty_paths(root: Path, paths: Sequence[str]) -> list[str]:
    """Those of *paths* (repo-relative) that are modified, staged or untracked."""
    repo = open_repo(root)
    out = repo.git.status("--porcelain", "--untracked-files=all", "--", *paths)
    return sorted({line[3:].strip() for line in out.splitlines() if line.strip()})


def head_sha(root: Path) -> str | None:
    """The commit checked out in *root*, or None (no git, no repository, no commit yet).

    Through the git command, not GitPython: the deploy stage records it in its bundle, and a
    stage should not pay GitPython's import for one line.
    """
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    head = proc.stdout.strip()
    return head if proc.returncode == 0 and head else None


@_git_errors
def head_commit(root: Path) -> str | None:
    repo = open_repo(root)
    try:
        return str(repo.head.commit.hexsha)
    except ValueError:  # no commits yet
        return None


def check_index_lock(root: Path) -> None:
    """Raise a GitError, with the fix, when git's index lock file is there.

    git creates ``index.lock`` while it writes the index and removes it when done; a git process
    that was killed leaves it behind, and then every later commit fails. It cannot be proved
    stale from here (a running ``git commit`` keeps it while its hooks or editor run, without
    holding it open), so it is reported, not removed.
    """
    repo = open_repo(root)
    lock = Path(repo.git_dir) / "index.lock"
    if lock.exists():
        try:
            shown = str(lock.relative_to(root))
        except ValueError:
            shown = str(lock)
        raise GitError(
            f"{shown} exists: git is writing the index right now, or a git process was killed "
            f"and left its lock behind. If no git process is running in this repository, "
            f"remove it (`rm {shown}`) and run again."
        )


@_git_errors
def require_identity(root: Path) -> None:
    """Fail early with a clear GitError when apply could not commit.

    Checks that git has a user.name / user.email and that no index.lock blocks a commit.
    """
    check_index_lock(root)
    repo = open_repo(root)
    reader = repo.config_reader()
    # GitPython treats default=None as "no default" and raises for a missing section
    name = reader.get_value("user", "name", default="")
    email = reader.get_value("user", "email", default="")
    if not name or not email:
        raise GitError(
            "git has no user identity: set it with `git config user.name NAME` and "
            "`git config user.email EMAIL` (or use --no-commit)"
        )


@_git_errors
def commit(root: Path, paths: Sequence[str], message: str) -> str | None:
    """Stage *paths* (additions, changes and deletions) and commit. None if nothing changed."""
    from mlopsctl.interrupts import deferred

    require_identity(root)
    start = time.perf_counter()
    with deferred():  # SIGINT/SIGTERM wait for git: a killed commit leaves index.lock behind
        sha = _commit(open_repo(root), root, paths, message)
    log.debug("git commit: %s in %.2fs", sha or "nothing to commit", time.perf_counter() - start)
    return sha


def _commit(repo: Any, root: Path, paths: Sequence[str], message: str) -> str | None:
    tracked = set(repo.git.ls_files("--", *paths).splitlines()) if paths else set()
    present = [p for p in paths if (root / p).exists()]
    gone = [p for p in paths if not (root / p).exists() and _tracked_under(p, tracked)]
    if present or gone:
        repo.git.add("-A", "--", *present, *gone)
    staged = repo.git.diff("--cached", "--name-only", "--", *paths).splitlines() if paths else []
    if not staged:
        return None
    # commit only our paths: anything else the user staged stays staged, uncommitted
    repo.git.commit("-m", message, "--no-verify", "--", *staged)
    return str(repo.head.commit.hexsha)


def _tracked_under(path: str, tracked: set[str]) -> bool:
    prefix = path.rstrip("/") + "/"
    return path in tracked or any(t.startswith(prefix) for t in tracked)


def ensure_ignored(root: Path, entry: str, comment: str) -> bool:
    """Append *entry* to the root .gitignore unless it is there. True when it was added."""
    gitignore = root / ".gitignore"
    lines = gitignore.read_text("utf-8").splitlines() if gitignore.exists() else []
    if entry in lines:
        return False
    with gitignore.open("a", encoding="utf-8") as fh:
        if lines and lines[-1] != "":
            fh.write("\n")
        fh.write(f"# {comment}\n{entry}\n")
    return True


@_git_errors
def create_tag(root: Path, name: str, target: str, message: str) -> None:
    """Create the annotated tag *name* on commit *target*, dated like that commit.

    The tag carries the commit's committer date (not the clock), so that a tag created later by
    crash recovery is the same object it would have been, and GTO orders it with its commit.
    """
    from mlopsctl.interrupts import deferred

    repo = open_repo(root)
    date = repo.git.show("-s", "--format=%cI", target, "--").strip()
    with deferred():  # a SIGINT/SIGTERM waits for the tag: it is one small ref write
        repo.git.tag(
            "-a",
            "--cleanup=whitespace",
            "-m",
            message,
            name,
            target,
            env={"GIT_COMMITTER_DATE": date},
        )


@_git_errors
def commit_messages(root: Path, since: str | None) -> list[tuple[str, str]]:
    """(sha, full message) of the first-parent commits after *since* up to HEAD, newest first."""
    repo = open_repo(root)
    if head_commit(root) is None:
        return []
    span = f"{since}..HEAD" if since else "HEAD"
    out = repo.git.log("--first-parent", "--format=%H%x00%B%x1e", span, "--")
    commits = []
    for record in out.split("\x1e"):
        sha, sep, body = record.strip("\n").partition("\x00")
        if sep:
            commits.append((sha.strip(), body))
    return commits
