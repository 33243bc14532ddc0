"""One call from a directory to a Plan: load specs, compile, read state, hash, decide."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from mlopsctl.compile.graph import Graph, compile_project
from mlopsctl.plan.hashing import HashCache
from mlopsctl.plan.model import Plan
from mlopsctl.plan.planner import make_plan
from mlopsctl.plan.state import AppliedState, read_state
from mlopsctl.spec.loader import find_project_root, load_project
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
    # read-only from here to the plan: each repository path is resolved (symlinks followed,
    # checked to stay inside) once, not once per check that looks at it
    with resolved_once():
        project = load_project(root)
        graph = compile_project(project)
        project.require_usecases(usecases)
        selected = graph.only(set(usecases)) if usecases else graph
        state = read_state(root)
        hashes = HashCache(root)
        plan = make_plan(project, selected, state, hashes, force=force, usecases=tuple(usecases))
    _debug(
        "plan %s: %d stage(s); read %d file(s) to hash %s; other md5s reused from the stat cache",
        plan.id[:12],
        len(plan.stages),
        len(hashes.hashed),
        ", ".join(hashes.hashed[:5]) + (" ..." if len(hashes.hashed) > 5 else ""),
    )
    return Planned(project, graph, state, plan)


def _debug(message: str, *args: object) -> None:
    """A debug log line, when logging is in use (``--debug`` sets it up; apply imports it).

    A plain ``plan`` does not import :mod:`logging` (~5 ms of a ~0.25 s plan) just to drop it.
    """
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger(__name__).debug(message, *args)
