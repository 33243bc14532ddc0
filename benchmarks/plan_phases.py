"""Where the time of a no-op `mlopsctl plan` goes, phase by phase (run in the project directory).

Does what `mlopsctl plan` does, through the same functions, with a clock around each phase, and
prints the phases (seconds) as JSON. Loading the specs is split further by wrapping the loader's
helpers in this process only (the product is not changed). Run by benchmarks/run.py.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

T0 = time.perf_counter()
phases: dict[str, float] = {}


def clock(name: str, start: float) -> float:
    now = time.perf_counter()
    phases[name] = phases.get(name, 0.0) + now - start
    return now


def wrap(module: Any, attr: str, name: str) -> None:
    """Add the time spent in module.attr to phases[name] (if this version of mlopsctl has it)."""
    original: Callable[..., Any] | None = getattr(module, attr, None)
    if original is None:
        return

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            clock(name, start)

    setattr(module, attr, timed)


def main() -> None:
    t = T0
    import mlopsctl.cli.cmd_plan  # noqa: F401  (imports mlopsctl.cli.main and click)

    t = clock("import: CLI (click)", t)
    import mlopsctl.plan.api as api

    t = clock("import: loader, compile, planner", t)
    import mlopsctl.report.plan_view as plan_view

    t = clock("import: plan report", t)

    from mlopsctl.compile.graph import compile_project
    from mlopsctl.plan.hashing import HashCache
    from mlopsctl.plan.planner import make_plan
    from mlopsctl.plan.state import read_state
    from mlopsctl.spec import loader

    wrap(loader, "SpecCache", "load specs: spec cache (read its file)")
    wrap(loader, "read_spec", "load specs: read spec files (inside the repo, regular)")
    wrap(loader, "parse_document", "load specs: parse YAML")
    wrap(loader, "validate_against_schema", "load specs: JSON-Schema validation (+ import)")
    wrap(loader, "build", "load specs: build the spec model")
    wrap(loader, "check_usecase", "load specs: semantic checks")

    t = time.perf_counter()
    root = loader.find_project_root(Path.cwd())
    project = loader.load_project(root)
    t = clock("load specs: total", t)
    graph = compile_project(project)
    t = clock("compile the graph", t)
    state = read_state(root)
    t = clock("read dvc.lock", t)
    plan = make_plan(project, graph, state, HashCache(root))
    t = clock("decide (hash cache, compare)", t)
    with redirect_stdout(io.StringIO()):  # not a terminal, as in CI: plain text
        plan_view.print_text(plan)
    t = clock("print the plan", t)
    phases["rich imported"] = float("rich" in sys.modules)
    phases["jsonschema imported"] = float("jsonschema" in sys.modules)
    _ = api
    phases["total in process"] = t - T0
    phases["stages"] = float(len(graph))
    json.dump(phases, sys.stdout)


if __name__ == "__main__":
    main()
