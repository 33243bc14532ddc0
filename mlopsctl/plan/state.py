"""The last applied state: dvc.lock, read as plain YAML (DVC itself is not imported here)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsctl.errors import StateError
from mlopsctl.fsutil import atomic_write
from mlopsctl.spec.cache import stat_key
from mlopsctl.spec.paths import UnsafePathError, inside_repo

LOCK_FILE = "dvc.lock"
LOCK_CACHE = ".mlopsctl/lock.json"
REMEDY = "restore the committed one with `git checkout -- dvc.lock`, then run apply again"
# an unfinished `git merge` of two branches that both applied (docs/gitops.md)
MERGE_REMEDY = (
    "take one side whole, `git checkout MERGE_HEAD -- dvc.lock reports/` (theirs) or "
    "`git checkout HEAD -- dvc.lock reports/` (ours), and commit the merge; then `mlopsctl "
    "apply` restores from the cache or recomputes what the other side changed (docs/gitops.md)"
)
_CONFLICT_MARKERS = (b"<<<<<<< ", b"=======", b">>>>>>> ")


@dataclass(frozen=True)
class LockedStage:
    """What dvc.lock records of one stage: command, dep/out hashes, param values."""

    name: str
    cmd: str
    deps: Mapping[str, str] = field(default_factory=dict)  # path -> md5
    outs: Mapping[str, str] = field(default_factory=dict)  # path -> md5
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # file -> key -> value


@dataclass(frozen=True)
class AppliedState:
    """dvc.lock, parsed: what the last apply recorded, stage by stage."""

    stages: Mapping[str, LockedStage]
    raw: bytes  # the file's bytes, to pin a saved plan to this exact state

    def get(self, dvc_name: str) -> LockedStage | None:
        return self.stages.get(dvc_name)


def read_state(root: Path) -> AppliedState:
    path = root / LOCK_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return AppliedState({}, b"")
    if not raw.strip():
        raise StateError(f"{LOCK_FILE} is empty (an interrupted write?): {REMEDY}")
    conflict = _conflict_line(raw)
    if conflict:
        raise StateError(
            f"{LOCK_FILE} has git merge conflict markers (line {conflict}): {MERGE_REMEDY}"
        )
    data = _parse(root, raw, stat_key(path))
    if not isinstance(data, dict) or not isinstance(data.get("stages", {}), dict):
        raise StateError(f"{LOCK_FILE} does not look like a DVC lock file: {REMEDY}")
    stages = {}
    for name, entry in (data.get("stages") or {}).items():
        if not isinstance(entry, dict):
            continue
        stages[name] = LockedStage(
            name=name,
            cmd=_cmd(entry.get("cmd")),
            deps=_hashes(entry.get("deps")),
            outs=_hashes(entry.get("outs")),
            params={f: dict(v or {}) for f, v in (entry.get("params") or {}).items()},
        )
    return AppliedState(stages, raw)


def _conflict_line(raw: bytes) -> int:
    """The line number of the first merge conflict marker in *raw*, 0 when there is none.

    All three markers, each at the start of a line, as git writes them.
    """
    if not all(m in raw for m in _CONFLICT_MARKERS):  # the common case, without a line split
        return 0
    lines = raw.splitlines()
    found = [
        next((i for i, line in enumerate(lines) if line.startswith(m)), -1)
        for m in _CONFLICT_MARKERS
    ]
    return found[0] + 1 if min(found) >= 0 else 0


def _parse(root: Path, raw: bytes, key: list[int] | None) -> Any:
    """dvc.lock as Python values; parsed from YAML once per content, then from a JSON copy.

    The copy is used only for the very file it was made from: the same bytes (md5) *and* the
    same stat *key* (device, inode, size, mtime and ctime: a checkout makes a new file, whose
    ctime no commit can predict). Bytes alone would trust a copy committed beside dvc.lock:
    ``git add -f .mlopsctl/lock.json`` in a pull request, with the md5 of its dvc.lock and
    made-up stages, would make plan and apply read a state that dvc.lock does not hold.
    """
    digest = hashlib.md5(raw, usedforsecurity=False).hexdigest()
    cache = root / LOCK_CACHE
    try:
        inside_repo(root, LOCK_CACHE)  # a committed `.mlopsctl` symlink is not followed
        cached = json.loads(cache.read_text("utf-8"))
        if key is not None and cached.get("md5") == digest and cached.get("stat") == key:
            return cached["data"]
    except (OSError, ValueError, AttributeError, KeyError, UnsafePathError):
        pass
    import yaml  # only when dvc.lock changed since the last plan (its JSON copy is stale)

    from mlopsctl.spec.yaml12 import Loader as _Loader

    try:
        data = yaml.load(raw, Loader=_Loader)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise StateError(f"{LOCK_FILE} is not valid YAML{at}: {REMEDY}") from exc
    # a read-only checkout, or a value JSON cannot hold: parse again next time
    with contextlib.suppress(OSError, TypeError, ValueError, UnsafePathError):
        inside_repo(root, LOCK_CACHE)
        record = {"md5": digest, "stat": key, "data": data}
        atomic_write(cache, json.dumps(record), durable=False)
    return data


def _cmd(value: Any) -> str:
    if isinstance(value, list):
        return " && ".join(map(str, value))
    return str(value or "")


def _hashes(items: Any) -> dict[str, str]:
    out = {}
    for item in items or []:
        if isinstance(item, dict) and "path" in item:
            out[str(item["path"])] = str(item.get("md5") or item.get("etag") or "")
    return out
