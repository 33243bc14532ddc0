"""Where the time of `mlopsctl apply --force --no-commit` goes (run in the project directory).

Calls the same function the CLI calls (``apply_directory``), with a clock wrapped around its
parts and around the DVC calls that record the stages, in this process only (the product is not
changed), and prints the phases (seconds) as JSON. The stages themselves run in the process
pool as usual; "run the stages" is the main process's wall time from the first dispatch to the
last result. Run by benchmarks/run.py.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

T0 = time.perf_counter()
phases: dict[str, float] = {}
calls: dict[str, int] = {}


def wrap(owner: Any, attr: str, name: str) -> None:
    """Add the time spent in owner.attr (a module function or a method) to phases[name]."""
    original: Callable[..., Any] = getattr(owner, attr)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - start
            calls[name] = calls.get(name, 0) + 1

    setattr(owner, attr, timed)


def main() -> None:
    from mlopsctl.execute import apply as apply_mod
    from mlopsctl.execute import executors
    from mlopsctl.integrations import dvc as dvc_mod
    from mlopsctl.plan import api, runcache

    phases["import mlopsctl (apply)"] = time.perf_counter() - T0
    start = time.perf_counter()
    dvc_mod._quiet()  # imports dvc, as the first DVC call of apply does
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo
    from dvc.stage import Stage
    from dvc.stage.cache import StageCache

    phases["import dvc"] = time.perf_counter() - start

    wrap(api, "plan_directory", "plan (load, compile, hash, decide)")
    wrap(apply_mod, "executor_for", "start the process pool")
    wrap(executors.LocalExecutor, "shutdown", "shut the process pool down")
    wrap(apply_mod.Applier, "run", "run the stages (pool round trips, main-process wall)")
    wrap(apply_mod.Applier, "_dispatch", "  dispatch (hash deps, fingerprint, submit)")
    wrap(apply_mod.Applier, "_journal", "  journal line + fsync")
    wrap(apply_mod, "write_dvc_yaml", "write dvc.yaml")
    wrap(dvc_mod, "record", "record in dvc.lock (dvc.record)")
    wrap(Repo, "__init__", "  DVC: open the repo")
    wrap(Stage, "save", "  DVC: stage.save (hash deps and outs)")
    wrap(StageCache, "save", "    DVC: run-cache entry (inside stage.save)")
    wrap(ParamsDependency, "get_hash", "    DVC: read params file (ruamel)")
    wrap(Stage, "commit", "  DVC: stage.commit (outs to the cache)")
    wrap(dvc_mod, "_write_lock", "  write dvc.lock (whole, renamed)")
    wrap(runcache, "record", "fill mlopsctl's run-cache")
    wrap(dvc_mod, "remote_configured", "look up the DVC remote")
    wrap(apply_mod, "remove_outputs", "remove stages gone from the specs")

    reporter = apply_mod.Reporter()
    start = time.perf_counter()
    result = apply_mod.apply_directory(Path.cwd(), reporter, commit=False, force=True)
    phases["apply_directory total"] = time.perf_counter() - start
    if result.failed:
        sys.exit(f"apply failed: {result.to_dict()}")
    phases["total in process"] = time.perf_counter() - T0
    ran = [o for o in result.outcomes if o.status == "ran"]
    phases["stages run"] = float(len(ran))
    # what the stages took inside the workers (the workers' own clock)
    builtin = ("ingest", "validate", "split", "train", "evaluate", "gate")
    phases["in workers: built-in stages"] = sum(
        o.seconds for o in ran if o.stage_id.rsplit("/", 1)[-1] in builtin
    )
    phases["in workers: custom stages"] = sum(
        o.seconds for o in ran if o.stage_id.rsplit("/", 1)[-1] not in builtin
    )
    json.dump({"seconds": phases, "calls": calls}, sys.stdout)


if __name__ == "__main__":
    main()
