"""DVC through its in-process API: init, add, commit (batched), push, checkout from cache.

Importing dvc costs ~0.25 s and attaches INFO log handlers; this module is imported only by
commands that touch the repository, and quiets DVC's loggers right after importing it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mlopsctl.errors import StateError


def _quiet() -> None:
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    import dvc.logger  # noqa: F401  (attaches its handlers on import)

    for name in ("dvc", "dvc_data", "dvc_objects", "scmrepo", "dvc.ui"):
        logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def open_repo(root: Path) -> Iterator[Any]:
    _quiet()
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    # DVC resolves some stage paths against the working directory: work from the root.
    cwd = os.getcwd()
    os.chdir(root)
    try:
        try:
            repo = Repo(os.fspath(root))
        except NotDvcRepoError as exc:
            raise StateError(f"{root} is not a DVC repository (run `mlopsctl init`)") from exc
        try:
            yield repo
        finally:
            repo.close()
    finally:
        os.chdir(cwd)


def ensure_initialised(root: Path) -> bool:
    """``dvc init`` unless done, with analytics off. Returns True when it initialised now."""
    _quiet()
    from dvc.repo import Repo

    created = False
    if not (root / ".dvc").is_dir():
        Repo.init(os.fspath(root)).close()
        created = True
    with open_repo(root) as repo, repo.config.edit() as conf:
        conf["core"]["analytics"] = False
    return created


def configure_remote(root: Path, name: str, url: str) -> None:
    """Add (or update) remote *name* and make it the default."""
    with open_repo(root) as repo, repo.config.edit() as conf:
        conf["remote"][name] = {"url": url}
        conf["core"]["remote"] = name


def remote_configured(root: Path, name: str | None) -> str | None:
    """The remote apply should push to: *name* if configured, else DVC's default, else None."""
    with open_repo(root) as repo:
        remotes = repo.config.get("remote", {})
        if name and name in remotes:
            return name
        default = repo.config.get("core", {}).get("remote")
        return default if default in remotes else None


def add(root: Path, paths: Sequence[str]) -> None:
    """``dvc add`` the given repo-relative files."""
    if not paths:
        return
    with open_repo(root) as repo:
        repo.add([os.fspath(root / p) for p in paths])


def commit_stages(root: Path, stage_names: Sequence[str]) -> None:
    """Record the named dvc.yaml stages in dvc.lock and the cache, writing dvc.lock once.

    Like ``dvc commit --force STAGE...`` but batched: DVC's own commit of several targets
    rewrites dvc.lock once per call, which makes recording N stages O(N^2).
    """
    if not stage_names:
        return
    wanted = set(stage_names)
    with open_repo(root) as repo, repo.lock:
        stages = [s for s in repo.index.stages if getattr(s, "name", None) in wanted]
        missing = wanted - {s.name for s in stages}
        if missing:
            raise StateError("dvc.yaml has no stage " + ", ".join(sorted(missing)))
        by_file: dict[Any, list[Any]] = {}
        for stage in stages:
            # run_cache=False: mlopsctl keeps its own run-cache (.mlopsctl/runs), keyed by the
            # stage fingerprint; DVC's costs a YAML write and a params re-read per stage
            stage.save(run_cache=False)
            # relink=False: the output we just wrote stays as it is; relinking would copy the
            # cache object back over it (the default cache type is reflink,copy)
            stage.commit(relink=False)
            by_file.setdefault(stage.dvcfile, []).append(stage)
        for dvcfile, group in by_file.items():
            dvcfile.dump_stages(group, update_pipeline=False)


def push(root: Path, remote: str) -> int:
    """``dvc push -r REMOTE``; returns the number of files transferred."""
    with open_repo(root) as repo:
        result = repo.push(remote=remote)
    return int(result or 0)


def cache_path(root: Path, md5: str) -> Path:
    """Where DVC 3 keeps the object with this md5 in the local cache."""
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
