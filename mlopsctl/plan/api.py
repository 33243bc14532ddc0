"""One call from a directory to a Plan: load specs, compile, read state, hash, decide."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from mlopsctl.compile.graph import Graph, compile_project
from mlopsctl.errors import StateError
from mlopsctl.plan.hashing import HashCache
from mlopsctl.plan.model import Plan
from mlopsctl.plan.planner import make_plan
from mlopsctl.plan.state import AppliedState, read_state
from mlopsctl.spec.loader import MLOPSCTL_DIR, find_project_root, load_project
from mlopsctl.spec.model import Project
from mlopsctl.spec.paths import resolved_once


@dataclass(frozen=True)
class Planned:
    """A plan with what it was made from: the project, its graph and the applied state."""

    project: Project
    graph: Graph  # the whole project's graph (dvc.yaml is written from it)
    state: AppliedState
    plan: Plan


def plan_directory(
    directory: Path, *, usecases: tuple[str, ...] = (), force: bool = False
) -> Planned:
    root = find_project_root(directory)
    refuse_committed_local_state(root)
    # read-only from here to the plan: each repository path is resolved (symlinks followed,
    # checked to stay inside) once, not once per check that looks at it
    with resolved_once():
        project = load_project(root)
        graph = compile_project(project)
        project.require_usecases(usecases)
        selected = graph.only(set(usecases)) if usecases else graph
        state = read_state(root)
        hashes = HashCache(root)
        plan = make_plan(
            project, selected, state, hashes, force=force, usecases=tuple(usecases), whole=graph
        )
    _debug(
        "plan %s: %d stage(s); read %d file(s) to hash %s; other md5s reused from the stat cache",
        plan.id[:12],
        len(plan.stages),
        len(hashes.hashed),
        ", ".join(hashes.hashed[:5]) + (" ..." if len(hashes.hashed) > 5 else ""),
    )
    return Planned(project, graph, state, plan)


def refuse_committed_local_state(root: Path) -> None:
    """Refuse a repository in which git tracks anything under ``.mlopsctl/``.

    Its caches decide what plan and apply believe without re-reading (a run-cache entry makes
    apply restore outputs instead of running the stage; its objects are what gets restored).
    On a machine they are written by mlopsctl only; in a checkout, a pull request could have
    committed made-up ones (``git add -f``). Checked only when the folder exists: a fresh CI
    clone has none, unless a commit brought it (one ``git ls-files``, ~3 ms, otherwise).
    """
    import os

    if not os.path.lexists(root / MLOPSCTL_DIR):
        return
    import subprocess

    try:
        proc = subprocess.run(
            ["git", "ls-files", "-z", "--", MLOPSCTL_DIR],
            cwd=root,
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # no git: nothing can be committed
        return
    tracked = [p for p in proc.stdout.decode("utf-8", "replace").split("\0") if p]
    if proc.returncode != 0 or not tracked:  # not a git repository, or nothing tracked
        return
    shown = ", ".join(tracked[:3]) + (f" and {len(tracked) - 3} more" if len(tracked) > 3 else "")
    raise StateError(
        f"git tracks mlopsctl's local state under {MLOPSCTL_DIR}/ ({shown}): it holds this "
        "machine's caches (the run-cache decides what apply restores instead of running), which "
        "a commit could forge; remove it from git and commit: "
        f"git rm -r --cached {MLOPSCTL_DIR} && git commit -m 'Untrack {MLOPSCTL_DIR}/'"
    )


def _debug(message: str, *args: object) -> None:
    """A debug log line, when logging is in use (``--debug`` sets it up; apply imports it).

    A plain ``plan`` does not import :mod:`logging` (~5 ms of a ~0.25 s plan) just to drop it.
    """
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger(__name__).debug(message, *args)
