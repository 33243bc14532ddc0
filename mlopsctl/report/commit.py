"""The apply commit: which files it holds, and a message naming use cases, stages and verdicts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlopsctl.compile.layout import UseCasePaths
from mlopsctl.plan.model import Plan


def commit_paths(root: Path, planned: Any, spec_files: Sequence[str]) -> list[str]:
    paths = ["dvc.yaml", "dvc.lock", ".gitignore", ".dvc/config", ".dvc/.gitignore", ".dvcignore"]
    paths += spec_files
    for uc in planned.project.usecases:
        lay = UseCasePaths(uc.name)
        paths += [lay.reports, f"{lay.artifacts}/.gitignore"]
        for src in uc.spec.data.sources.values():
            if src.path and (root / f"{src.path}.dvc").exists():
                paths.append(f"{src.path}.dvc")
                if "/" in src.path:
                    paths.append(f"{src.path.rsplit('/', 1)[0]}/.gitignore")
        for cs in uc.spec.stages:
            paths += list(cs.metrics)
            paths += [f"{o.rsplit('/', 1)[0]}/.gitignore" for o in cs.outs if "/" in o]
    for sp in planned.plan.stages:  # reports of removed use cases are deleted in the commit
        paths.append(UseCasePaths(sp.usecase).reports)
    return list(dict.fromkeys(paths))


def _gate(root: Path, usecase: str) -> dict[str, Any] | None:
    try:
        verdict: dict[str, Any] = json.loads((root / UseCasePaths(usecase).gate).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return verdict


def commit_message(root: Path, planned: Any, plan: Plan, outcomes: Sequence[Any]) -> str:
    by_uc: dict[str, list[Any]] = {}
    for o in outcomes:
        by_uc.setdefault(o.stage_id.split("/", 1)[0], []).append(o)
    touched = [uc for uc, os_ in by_uc.items() if any(o.status != "up-to-date" for o in os_)]
    subject = "mlopsctl apply: " + (", ".join(touched) if touched else "regenerate dvc.yaml")
    body: list[str] = []
    trailers = [f"Mlopsctl-Plan: {plan.id}"]
    hashes = {}
    from mlopsctl.plan.hashing import HashCache

    hc = HashCache(root)
    for uc in touched:
        parts = []
        for status in ("ran", "restored", "removed", "failed", "blocked"):
            names = [o.stage_id.split("/", 1)[1] for o in by_uc[uc] if o.status == status]
            if names:
                parts.append(f"{status}: {', '.join(names)}")
        body.append(f"{uc}: " + "; ".join(parts))
        snap = UseCasePaths(uc).snapshot
        md5 = hc.md5(snap)
        if md5:
            hashes[uc] = md5
            trailers.append(f"Mlopsctl-Data: {uc} {snap} md5:{md5}")
        verdict = _gate(root, uc)
        if verdict is not None:
            checks = ", ".join(
                f"{c['metric']}={c['value']:.4g}"
                if isinstance(c.get("value"), int | float)
                else f"{c['metric']}=missing"
                for c in verdict.get("checks", [])
            )
            trailers.append(
                f"Mlopsctl-Gate: {uc} {'passed' if verdict.get('passed') else 'failed'} ({checks})"
            )
    return subject + "\n\n" + "\n".join(body) + "\n\n" + "\n".join(trailers) + "\n"
