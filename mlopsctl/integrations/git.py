"""git through GitPython: init, status of spec files, and the apply commit."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlopsctl.errors import GitError


def _git() -> Any:
    try:
        import git
    except ImportError as exc:  # GitPython raises ImportError when the git binary is missing
        raise GitError(f"git is not available: {exc}") from exc
    return git


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


def dirty_paths(root: Path, paths: Sequence[str]) -> list[str]:
    """Those of *paths* (repo-relative) that are modified, staged or untracked."""
    repo = open_repo(root)
    out = repo.git.status("--porcelain", "--untracked-files=all", "--", *paths)
    return sorted({line[3:].strip() for line in out.splitlines() if line.strip()})


def head_commit(root: Path) -> str | None:
    repo = open_repo(root)
    try:
        return str(repo.head.commit.hexsha)
    except ValueError:  # no commits yet
        return None


def require_identity(root: Path) -> None:
    """Raise a clear GitError when git has no user.name / user.email to commit with."""
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


def commit(root: Path, paths: Sequence[str], message: str) -> str | None:
    """Stage *paths* (additions, changes and deletions) and commit. None if nothing changed."""
    require_identity(root)
    repo = open_repo(root)
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
