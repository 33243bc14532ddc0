"""Repository paths that cannot leave the repository, whatever symlinks a pull request commits.

Every spec path is relative to the repository root; a lexical check (no ``..``, not absolute) is
not enough, because ``data/vdir -> /elsewhere`` makes ``data/vdir/x`` a path outside it. The one
function here resolves every existing component as the kernel would and refuses the result when
it is not under the (resolved) root. Callers use it at validate time and again right before they
read, write or delete anything.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlopsctl.errors import MlopsctlError

#: Linux's own limit on the symlinks followed while resolving one path.
_MAX_LINKS = 40


class UnsafePathError(MlopsctlError):
    """A repository path that resolves outside the repository, or is not what it must be."""

    def __init__(self, rel: str, problem: str) -> None:
        super().__init__(f"path '{rel}' {problem}")
        self.rel = rel
        self.problem = problem


def inside_repo(root: Path | str, rel: str | os.PathLike[str]) -> Path:
    """The real path of ``root/rel`` with every existing symlink resolved.

    Raises :class:`UnsafePathError` when *rel* is absolute, or when the resolved path (or any
    symlink on the way, dangling ones included) leaves *root*. Components that do not exist yet
    are kept as written, so an output that a stage is about to create can be checked too.
    """
    return Path(resolve_inside(root, rel))


def resolve_inside(root: Path | str, rel: str | os.PathLike[str]) -> str:
    """:func:`inside_repo` as a string: for checks that only need to know (a plan checks
    thousands of paths, and a Path object costs more than the check itself)."""
    rel_s = os.fspath(rel)
    root_s = os.fspath(root)
    memo = _MEMO.get()
    if memo is None:
        return _resolve(root_s, rel_s)
    found = memo.get((root_s, rel_s))
    if found is None:
        try:
            found = memo[root_s, rel_s] = _resolve(root_s, rel_s)
        except UnsafePathError as exc:
            found = memo[root_s, rel_s] = exc
    if isinstance(found, UnsafePathError):
        raise UnsafePathError(found.rel, found.problem)
    return found


@contextlib.contextmanager
def resolved_once() -> Iterator[None]:
    """Within this block (in this thread), each path is resolved once and the answer reused.

    For read-only passes only: a plan asks about the same dependency path in its semantic
    checks, its hashing and its decisions. Nothing that writes or deletes may run inside,
    since a stage can change what a path resolves to; outside the block every call resolves
    afresh, as it must right before a file is read, written or deleted.
    """
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


#: the answers of the enclosing :func:`resolved_once` block (a ContextVar: other threads, e.g.
#: apply's DVC preload, never see them)
_MEMO: contextvars.ContextVar[dict[tuple[str, str], str | UnsafePathError] | None] = (
    contextvars.ContextVar("mlopsctl_resolved_paths", default=None)
)


def _resolve(root_s: str, rel_s: str) -> str:
    if os.path.isabs(rel_s):
        raise UnsafePathError(rel_s, "must be relative to the repository")
    # a relative root depends on the working directory: resolved each time
    base = _real_root(root_s) if os.path.isabs(root_s) else os.path.realpath(root_s)
    pending = [p for p in reversed(rel_s.replace("\\", "/").split("/")) if p not in ("", ".")]
    current = base
    shown = ""  # the part of rel resolved so far, as the user wrote it (for the message)
    link = ""  # the last symlink followed, to say which one leads out
    links = 0
    missing = False  # once a component is missing, the rest is lexical
    while pending:
        part = pending.pop()
        if part == "..":
            current = os.path.dirname(current)
            missing = False  # back to a directory that may exist: `mkdir -p x/../link/y`
            if not link:
                shown = shown.rpartition("/")[0]
            continue
        candidate = os.path.join(current, part)
        if not missing:
            try:
                st = os.lstat(candidate)
            except (FileNotFoundError, NotADirectoryError):
                missing = True
            except OSError as exc:
                raise UnsafePathError(rel_s, f"cannot be inspected: {exc.strerror}") from exc
            else:
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    if links > _MAX_LINKS:
                        raise UnsafePathError(rel_s, "has too many levels of symbolic links")
                    target = os.readlink(candidate)
                    shown = posix_join(shown, part)
                    link = f"'{shown}' is a symlink to '{target}'"
                    if os.path.isabs(target):
                        current = "/"
                    pending.extend(p for p in reversed(target.split("/")) if p not in ("", "."))
                    continue
        current = candidate
        if not link:
            shown = posix_join(shown, part)
    # only where the path ends matters: that is the file the kernel would open
    if not _is_under(base, current):
        raise UnsafePathError(rel_s, "leaves the repository" + (f": {link}" if link else ""))
    return current


@functools.lru_cache(maxsize=16)
def _real_root(root: str) -> str:
    """The repository root, resolved once per process: a plan checks thousands of paths under
    it. Only the root is remembered; every path inside it is resolved again each time."""
    return os.path.realpath(root)


def is_regular_file(path: Path) -> bool:
    """Whether *path* (already resolved) is a regular file; never opens it."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


#: the largest JSON record :func:`read_json_object` reads (a larger file counts as absent)
MAX_JSON_BYTES = 16 << 20


def read_json_object(
    root: Path | str, rel: str, max_bytes: int = MAX_JSON_BYTES
) -> dict[str, Any] | None:
    """The JSON object of the record *rel* (a gate verdict, metrics: what a stage wrote), or None.

    The file may come from a commit anyone could have made: a path that leads out of the
    repository through a symlink is not read, a symlink at *rel* itself is not followed, and a
    file that is missing, not regular, larger than *max_bytes*, not JSON or not an object counts
    as absent.
    """
    try:
        path = inside_repo(root, rel)  # no symlinked folder on the way leads out
        st = os.lstat(os.path.join(root, rel))  # the record itself, not what a symlink names
        if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
            return None  # a symlink (even one inside), a directory, a FIFO; or too large
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError, UnsafePathError):
        return None
    return data if isinstance(data, dict) else None


def file_kind(mode: int) -> str:
    """``"a FIFO"``, ``"a directory"``... for a stat mode, to say what a path is instead."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symlink"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def posix_join(a: str, b: str) -> str:
    return f"{a}/{b}" if a else b


def _is_under(base: str, path: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")
