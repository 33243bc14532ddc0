"""mlopsctl's run-cache: stage fingerprint -> the output hashes it produced.

A fingerprint is one canonical serialisation of everything a stage's result depends on
(command, which pins the environment for train; dep hashes; param values; output paths), so
that a stage seen before can be restored instead of recomputed (revert a param and nothing
trains). Outputs live in DVC's cache (cached outs) or in ``.mlopsctl/objects`` (reports, which
DVC does not cache); both are content-addressed by md5.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlopsctl.fsutil import atomic_write

RUNS_DIR = ".mlopsctl/runs"
OBJECTS_DIR = ".mlopsctl/objects"


def fingerprint(
    cmd: str, deps: Mapping[str, str], params: Mapping[str, Any], outs: list[str] | tuple[str, ...]
) -> str:
    blob = json.dumps(
        {"cmd": cmd, "deps": dict(deps), "params": dict(params), "outs": sorted(outs)},
        sort_keys=True,
        default=str,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def object_paths(root: Path, md5: str) -> tuple[Path, Path]:
    """Where an object may be stored: DVC's local cache, then ours."""
    return (
        root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:],
        root / OBJECTS_DIR / md5[:2] / md5[2:],
    )


def find_object(root: Path, md5: str) -> Path | None:
    if md5.endswith(".dir"):
        return None  # directory outputs are restored by running (DVC checkout is not replicated)
    for p in object_paths(root, md5):
        if p.is_file():
            return p
    return None


def lookup(root: Path, fp: str) -> dict[str, str] | None:
    """The outputs recorded for fingerprint *fp*, if every one of them is still available."""
    try:
        entry = json.loads((root / RUNS_DIR / fp[:2] / f"{fp}.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    outs: dict[str, str] = entry.get("outs", {})
    if not outs or any(find_object(root, md5) is None for md5 in outs.values()):
        return None
    return outs


def record(root: Path, fp: str, stage_id: str, outs: Mapping[str, str]) -> None:
    """Remember that *fp* produced *outs*; keep a copy of outputs DVC does not cache."""
    for rel, md5 in outs.items():
        if md5.endswith(".dir") or find_object(root, md5) is not None:
            continue
        target = object_paths(root, md5)[1]
        atomic_write(target, (root / rel).read_bytes())  # reports: small files
    path = root / RUNS_DIR / fp[:2] / f"{fp}.json"
    # an index entry is a hint, not a record (lookup reads a missing or torn one as a miss, and
    # a restore checks each object's md5): no fsync per stage. The objects above are fsynced.
    entry = json.dumps({"stage": stage_id, "outs": dict(sorted(outs.items()))})
    atomic_write(path, entry, durable=False)
