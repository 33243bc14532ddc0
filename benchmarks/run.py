"""mlopsctl benchmarks, side by side with DVC on the same generated repositories.

    python benchmarks/run.py [--quick] [--sizes 10,50,200] [--only noop,executor,pipeline,hash]

Run it with the project's virtualenv Python (its bin/ directory must hold `mlopsctl` and `dvc`).
Prints a markdown table and writes every sample as JSON to benchmarks/results/. See
benchmarks/README.md for what each benchmark measures and for the targets.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import repos

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
BENCHMARKS = ("noop", "cold", "scale", "executor", "pipeline", "usecases", "hash")
MiB = 1024 * 1024
GiB = 1024 * MiB


# --- measuring ------------------------------------------------------------------------------


class LoadMonitor:
    """CPU time used by user processes outside this run's process group: other users of the machine.

    Sampled around every measurement, so that a result can say how busy the machine was. A lower
    bound: a process of another group that starts and ends inside one interval is only counted
    when its parent reaps it.
    """

    def __init__(self) -> None:
        self.pgid = os.getpgid(0)
        self.hz = os.sysconf("SC_CLK_TCK")
        self.last = 0.0  # cores used by others during the last interval

    def snapshot(self) -> tuple[float, dict[tuple[int, int], int]]:
        procs = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                text = Path(entry.path, "stat").read_text("utf-8", errors="replace")
            except OSError:
                continue
            fields = text.rsplit(")", 1)[1].split()
            # skip this run's processes, and kernel threads (pgid 0: writeback, reclaim, ...)
            if int(fields[2]) in (self.pgid, 0):
                continue
            # utime, stime, cutime, cstime; keyed by (pid, start time) against pid reuse
            procs[(int(entry.name), int(fields[19]))] = sum(int(f) for f in fields[11:15])
        return time.perf_counter(), procs

    def since(self, snap: tuple[float, dict[tuple[int, int], int]]) -> float:
        """Cores used by others since *snap* (also kept in .last)."""
        t0, before = snap
        t1, after = self.snapshot()
        ticks = sum(max(0, v - before.get(k, 0)) for k, v in after.items())
        cores = ticks / self.hz / (t1 - t0) if t1 > t0 else 0.0
        # a child's CPU lands in its parent's cutime when it is reaped, all at once: cap spikes
        self.last = min(cores, float(os.cpu_count() or 1))
        return self.last


LOAD = LoadMonitor()


@dataclass
class Series:
    """Repeated wall-time measurements of one thing, in seconds, with the machine's other load."""

    samples: list[float] = field(default_factory=list)
    others: list[float] = field(default_factory=list)  # cores used by other processes

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)
        self.others.append(LOAD.last)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def to_json(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "min": min(self.samples),
            "max": max(self.samples),
            "samples": self.samples,
            "other_processes_cores": self.others,
        }


class Bench:
    """Shared state of a run: where the tools are, their environment, the scratch directory."""

    def __init__(self, work: Path, reps: int, log: Callable[[str], None]) -> None:
        self.work = work
        self.reps = reps
        self.log = log
        self.bin = Path(sys.executable).parent
        self.env = repos.tool_env(self.bin)
        self.mlopsctl = self._tool("mlopsctl")
        self.dvc = self._tool("dvc")

    def _tool(self, name: str) -> str:
        path = shutil.which(name, path=self.env["PATH"])
        if path is None:
            sys.exit(f"error: `{name}` not found; run this with the project's virtualenv Python")
        return path

    def run(
        self,
        cmd: Sequence[str],
        cwd: Path,
        ok: Sequence[int] = (0,),
        env: Mapping[str, str] | None = None,
    ) -> tuple[float, subprocess.CompletedProcess[str]]:
        """Run *cmd* to completion; its wall time (fork to exit) and the finished process."""
        snap = LOAD.snapshot()
        start = time.perf_counter()
        proc = subprocess.run(
            list(cmd), cwd=cwd, env=env or self.env, capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - start
        LOAD.since(snap)
        if proc.returncode not in ok:
            raise RuntimeError(
                f"`{' '.join(cmd)}` in {cwd} exited with {proc.returncode}\n"
                f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
            )
        return seconds, proc

    def timed(
        self,
        cmd: Sequence[str],
        cwd: Path,
        ok: Sequence[int] = (0,),
        env: Mapping[str, str] | None = None,
    ) -> float:
        return self.run(cmd, cwd, ok, env)[0]

    def apply(
        self, root: Path, *extra: str, env: Mapping[str, str] | None = None
    ) -> tuple[float, dict[str, Any]]:
        """`mlopsctl apply --json ...`: wall time and the result it prints."""
        seconds, proc = self.run([self.mlopsctl, "apply", "--json", *extra], root, env=env)
        result = json.loads(proc.stdout)
        if not result.get("ok"):
            raise RuntimeError(f"mlopsctl apply in {root} failed:\n{proc.stdout[-3000:]}")
        return seconds, result


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope and intercept of ys over xs."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return slope, my - slope * mx


# --- 1. no-op plan vs no-op dvc status / dvc repro --------------------------------------------


def bench_noop(b: Bench, sizes: Sequence[int]) -> dict[str, Any]:
    rows = []
    phases: dict[str, Any] = {}
    for n in sizes:
        if n < repos.BUILTIN_STAGES + 1:
            raise SystemExit(f"--sizes: the no-op benchmark needs at least 7 stages, not {n}")
        n_custom = n - repos.BUILTIN_STAGES
        root = repos.make_chain_repo(b.work / f"noop-{n}", n_custom, b.env)
        b.log(f"noop {n} stages: first apply")
        first, _ = b.apply(root)
        # warm-up (not measured), which also checks that every tool sees nothing to do
        b.timed([b.mlopsctl, "plan", "--detailed-exitcode"], root)
        status = b.run([b.dvc, "status", "--json"], root)[1].stdout
        if json.loads(status or "{}"):
            raise RuntimeError(f"dvc status is not clean after mlopsctl apply:\n{status[:2000]}")
        before = [(root / f).read_bytes() for f in ("dvc.yaml", "dvc.lock")]
        b.timed([b.dvc, "repro"], root)
        if [(root / f).read_bytes() for f in ("dvc.yaml", "dvc.lock")] != before:
            raise RuntimeError(f"the no-op dvc repro changed dvc.yaml or dvc.lock in {root}")
        plan, dvc_status, dvc_repro, cold = Series(), Series(), Series(), Series()
        reps = 2 * b.reps  # short samples, more noise: twice the repetitions
        for i in range(reps):
            b.log(f"noop {n} stages: rep {i + 1}/{reps}")
            plan.add(b.timed([b.mlopsctl, "plan"], root))
            dvc_status.add(b.timed([b.dvc, "status"], root))
            dvc_repro.add(b.timed([b.dvc, "repro"], root))
            # as in CI on a fresh clone: no .mlopsctl/ (hash and spec caches, git-ignored)
            shutil.rmtree(root / ".mlopsctl")
            cold.add(b.timed([b.mlopsctl, "plan", "--detailed-exitcode"], root))
        rows.append(
            {
                "stages": n,
                "custom_stages": n_custom,
                "first_apply_s": first,
                "mlopsctl_plan": plan.to_json(),
                "mlopsctl_plan_without_local_caches": cold.to_json(),
                "dvc_status": dvc_status.to_json(),
                "dvc_repro": dvc_repro.to_json(),
                "plan_over_status": ratio(plan.median, dvc_status.median),
                "plan_over_repro": ratio(plan.median, dvc_repro.median),
            }
        )
        if n == max(sizes):
            phases = plan_phases(b, root)
    return {"rows": rows, "plan_phases": phases}


def plan_phases(b: Bench, root: Path, cold: bool = False) -> dict[str, Any]:
    """The phases of a no-op plan (medians), the bare interpreter start, and CLI wall time.

    *cold*: each run without `.mlopsctl/` (a fresh clone's first plan).
    """
    b.log(f"plan phases{' (cold)' if cold else ''}")
    probe = BENCH_DIR / "plan_phases.py"

    walls: list[float] = []

    def probe_run() -> dict[str, float]:
        if cold:
            shutil.rmtree(root / ".mlopsctl", ignore_errors=True)
        seconds, proc = b.run([sys.executable, str(probe)], root)
        walls.append(seconds)
        return dict(json.loads(proc.stdout))

    runs = [probe_run() for _ in range(b.reps)]
    keys = list(dict.fromkeys(k for r in runs for k in r))  # a cold run has more phases
    out: dict[str, Any] = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in keys}
    out["python -c pass (interpreter start)"] = statistics.median(
        b.timed([sys.executable, "-c", "pass"], root) for _ in range(b.reps)
    )
    out["probe wall (fork to exit)"] = statistics.median(walls)
    return out


# --- 1b. cold plan on a fresh clone vs cold dvc status ------------------------------------------


def chain_applied(b: Bench, n: int) -> Path:
    """The chain repository of *n* stages in all, applied once (built once per run)."""
    root = b.work / f"chain-{n}"
    if not (root / "dvc.lock").exists():
        repos.make_chain_repo(root, n - repos.BUILTIN_STAGES, b.env)
        b.log(f"chain {n} stages: first apply")
        b.apply(root)
    return root


def dvc_site_cache(b: Bench, root: Path) -> Path:
    """Where DVC keeps its state of *root* (file hashes, index) outside the repository."""
    code = "from dvc.repo import Repo; print(Repo('.').site_cache_dir)"
    return Path(b.run([sys.executable, "-c", code], root)[1].stdout.strip())


def bench_cold(b: Bench, sizes: Sequence[int]) -> dict[str, Any]:
    """`mlopsctl plan` and `dvc status` on a fresh clone (CI), both without any cache."""
    rows = []
    for n in sizes:
        origin = chain_applied(b, n)
        clone = repos.fresh_clone(origin, b.work / f"clone-{n}", b.env)
        site = dvc_site_cache(b, clone)
        if b.run([b.mlopsctl, "plan", "--detailed-exitcode"], clone)[1].returncode != 0:
            raise RuntimeError(f"plan on the fresh clone {clone} is not a no-op")
        if json.loads(b.run([b.dvc, "status", "--json"], clone)[1].stdout or "{}"):
            raise RuntimeError(f"dvc status on the fresh clone {clone} is not clean")
        cold_plan, cold_status, warm_plan, warm_status = Series(), Series(), Series(), Series()
        reps = 2 * b.reps if n <= 200 else b.reps
        for i in range(reps):
            b.log(f"cold {n} stages: rep {i + 1}/{reps}")
            shutil.rmtree(site, ignore_errors=True)  # DVC's hashes and index of this clone
            cold_status.add(b.timed([b.dvc, "status"], clone))
            shutil.rmtree(clone / ".mlopsctl", ignore_errors=True)  # git-ignored: not in a clone
            cold_plan.add(b.timed([b.mlopsctl, "plan", "--detailed-exitcode"], clone))
            warm_status.add(b.timed([b.dvc, "status"], clone))
            warm_plan.add(b.timed([b.mlopsctl, "plan", "--detailed-exitcode"], clone))
        rows.append(
            {
                "stages": n,
                "dvc_site_cache": str(site),
                "cold_plan": cold_plan.to_json(),
                "cold_dvc_status": cold_status.to_json(),
                "warm_plan": warm_plan.to_json(),
                "warm_dvc_status": warm_status.to_json(),
                "cold_ratio": ratio(cold_plan.median, cold_status.median),
                "warm_ratio": ratio(warm_plan.median, warm_status.median),
                "cold_over_warm_plan": ratio(cold_plan.median, warm_plan.median),
            }
        )
        if n == max(sizes):
            rows[-1]["plan_phases_cold"] = plan_phases(b, clone, cold=True)
    return {"rows": rows}


# --- 1c. scale sweep: plan and forced apply, 10 to 1,000 stages ----------------------------------


def bench_scale(b: Bench, sizes: Sequence[int]) -> dict[str, Any]:
    """No-op plan and `apply --force --no-commit` of chains of *sizes* stages (mlopsctl only)."""
    ns = [repos.BUILTIN_STAGES, *sorted(set(sizes) - {repos.BUILTIN_STAGES})]
    roots = {n: chain_applied(b, n) for n in ns}
    plans = {n: Series() for n in ns}
    applies = {n: Series() for n in ns}
    # the short runs get more reps: at 6-50 stages an apply takes 3-5 s, most of it the
    # built-in stages' imports, whose noise (+-0.5 s a run) would swamp 44 stages' marginal
    # cost (~0.7 s): 11 reps, not 7, since 7 gave 50 stages 1.6 and 8.9 ms each in two runs
    reps = {n: max(b.reps, 11) if n <= 50 else b.reps if n <= 200 else min(b.reps, 3) for n in ns}
    # the sizes interleaved within every repetition (6, 10, 50, ..., 6, 10, 50, ...), as the
    # other benchmarks interleave their tools: a per-stage figure is the difference of two
    # sizes' medians, and the VM's speed drifts within minutes (run one size after another,
    # the 6-stage baseline once came out slower than the 10-stage chain)
    for i in range(max(reps.values())):
        for n in ns:
            if i >= reps[n]:
                continue
            b.log(f"scale {n} stages: rep {i + 1}/{reps[n]}")
            plans[n].add(b.timed([b.mlopsctl, "plan", "--detailed-exitcode"], roots[n]))
            seconds, result = b.apply(roots[n], "--force", "--no-commit")
            if sum(1 for st in result["stages"] if st["status"] == "ran") != n:
                raise RuntimeError(f"apply --force in {roots[n]} did not run all {n} stages")
            applies[n].add(seconds)
    rows = [
        {"stages": n, "plan": plans[n].to_json(), "apply_force": applies[n].to_json()} for n in ns
    ]
    base = rows[0]
    for row in rows[1:]:
        extra = row["stages"] - base["stages"]
        row["apply_per_stage_marginal"] = (
            row["apply_force"]["median"] - base["apply_force"]["median"]
        ) / extra
        row["plan_per_stage_marginal"] = (row["plan"]["median"] - base["plan"]["median"]) / extra
    sized = rows[1:]
    fits = {}
    for key in ("plan", "apply_force"):
        slope, intercept = fit_line([r["stages"] for r in sized], [r[key]["median"] for r in sized])
        fits[key] = {"per_stage_s": slope, "fixed_s": intercept}
        # linear: the line predicts every size within 15% (or 50 ms) of what was measured
        fits[key]["worst_residual"] = max(
            abs(r[key]["median"] - (slope * r["stages"] + intercept)) / r[key]["median"]
            for r in sized
        )
    return {"rows": rows, "fit": fits}


# --- 2. executor overhead per trivial stage -----------------------------------------------------


def bench_executor(b: Bench, sizes: Sequence[int]) -> dict[str, Any]:
    counts = [0, *sorted(set(sizes))]
    rows = []
    for k in counts:
        root = repos.make_chain_repo(b.work / f"exec-{k}", k, b.env)
        b.log(f"executor {k} custom stages: first apply")
        b.apply(root)
        b.timed([b.dvc, "status"], root)  # warm-up: DVC's state of the workspace
        ml, dvc = Series(), Series()
        inside: list[float] = []
        for i in range(b.reps):
            b.log(f"executor {k} custom stages: rep {i + 1}/{b.reps}")
            seconds, result = b.apply(root, "--force", "--no-commit")
            ml.add(seconds)
            ran = [s for s in result["stages"] if s["status"] == "ran"]
            if len(ran) != k + repos.BUILTIN_STAGES:
                raise RuntimeError(f"apply --force ran {len(ran)} stages, not {k + 6}")
            inside.append(sum(s["seconds"] for s in ran if is_custom(s["id"])))
            dvc.add(b.timed([b.dvc, "repro", "--force"], root))
        rows.append(
            {
                "apply_phases": apply_phases(b, root),
                "custom_stages": k,
                "stages": k + repos.BUILTIN_STAGES,
                "mlopsctl_apply_force": ml.to_json(),
                "dvc_repro_force": dvc.to_json(),
                # what the custom stages' commands took inside the workers (cp and its shell)
                "mlopsctl_custom_stage_seconds_in_worker": statistics.median(inside),
            }
        )
    base = rows[0]
    for row in rows[1:]:
        k = row["custom_stages"]
        for tool, key in (("mlopsctl", "mlopsctl_apply_force"), ("dvc", "dvc_repro_force")):
            total = row[key]["median"]
            row[f"{tool}_per_stage_raw"] = total / row["stages"]
            row[f"{tool}_per_stage_marginal"] = (total - base[key]["median"]) / k
        row["marginal_ratio"] = ratio(
            row["mlopsctl_per_stage_marginal"], row["dvc_per_stage_marginal"]
        )
    fits = {}
    for tool, key in (("mlopsctl", "mlopsctl_apply_force"), ("dvc", "dvc_repro_force")):
        slope, intercept = fit_line(
            [r["custom_stages"] for r in rows], [r[key]["median"] for r in rows]
        )
        fits[tool] = {"per_stage_s": slope, "fixed_s": intercept}
    return {"rows": rows, "fit": fits}


def apply_phases(b: Bench, root: Path) -> dict[str, Any]:
    """Where `apply --force --no-commit` spends its time (medians of up to 3 runs)."""
    probe = BENCH_DIR / "apply_phases.py"
    runs = [
        json.loads(b.run([sys.executable, str(probe)], root)[1].stdout)
        for _ in range(min(3, b.reps))
    ]
    keys = list(dict.fromkeys(k for r in runs for k in r["seconds"]))
    return {
        "seconds": {k: statistics.median(r["seconds"].get(k, 0.0) for r in runs) for k in keys},
        "calls": runs[0]["calls"],
    }


def is_custom(stage_id: str) -> bool:
    name = stage_id.rsplit("/", 1)[-1]
    return name[:1] == "s" and name[1:].isdigit()


# --- 3. a real four-stage scikit-learn pipeline -------------------------------------------------


def bench_pipeline(b: Bench, rows: int, threads: int | None) -> dict[str, Any]:
    env = dict(b.env)
    if threads is not None:  # the same for the three runners
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    csv = b.work / "customers.csv"
    b.log(f"pipeline: generating {rows} rows")
    repos.make_customers_csv(csv, rows)
    ml_root = repos.make_pipeline_repo(b.work / "pipeline-mlopsctl", csv, b.env)
    bare_root = repos.make_bare_dir(b.work / "pipeline-bare", csv)
    dvc_root = repos.make_dvc_pipeline_repo(b.work / "pipeline-dvc", csv, b.env, sys.executable)

    b.log("pipeline: first runs (warm-up)")
    first_apply, _ = b.apply(ml_root, env=env)
    run_bare(b, bare_root, env)
    run_one_process(b, bare_root, env)
    run_one_process(b, bare_root, env, same_outputs=True)
    first_repro = b.timed([b.dvc, "repro"], dvc_root, env=env)

    bare, one, same, ml, dvc = Series(), Series(), Series(), Series(), Series()
    bare_steps: dict[str, list[float]] = {}
    ml_stages: dict[str, list[float]] = {}
    for i in range(b.reps):
        b.log(f"pipeline: rep {i + 1}/{b.reps}")
        total, steps = run_bare(b, bare_root, env)
        bare.add(total)
        one.add(run_one_process(b, bare_root, env))
        same.add(run_one_process(b, bare_root, env, same_outputs=True))
        for name, s in steps.items():
            bare_steps.setdefault(name, []).append(s)
        seconds, result = b.apply(ml_root, "--force", "--no-commit", env=env)
        ml.add(seconds)
        for st in result["stages"]:
            ml_stages.setdefault(st["id"].split("/")[1], []).append(st["seconds"])
        dvc.add(b.timed([b.dvc, "repro", "--force"], dvc_root, env=env))

    ml_metrics = json.loads((ml_root / "reports/churn/metrics.json").read_text("utf-8"))
    bare_metrics = json.loads((bare_root / "out/metrics.json").read_text("utf-8"))
    one_metrics = json.loads((bare_root / "out-one/metrics.json").read_text("utf-8"))
    return {
        "rows": rows,
        "threads": threads,
        "csv_bytes": csv.stat().st_size,
        "estimator": repos.ESTIMATOR,
        "params": repos.ESTIMATOR_PARAMS,
        "bare_scripts": bare.to_json(),
        "bare_one_process": one.to_json(),
        "mlopsctl_over_one_process": ratio(ml.median, one.median),
        # the same work: every file apply writes (validate report, skops model, signature,
        # reference profile, plots), in one process
        "bare_one_process_same_outputs": same.to_json(),
        "mlopsctl_over_same_work": ratio(ml.median, same.median),
        "mlopsctl_apply_force": ml.to_json(),
        "dvc_repro_force": dvc.to_json(),
        "mlopsctl_over_bare": ratio(ml.median, bare.median),
        "dvc_over_bare": ratio(dvc.median, bare.median),
        "bare_step_medians": {k: statistics.median(v) for k, v in bare_steps.items()},
        "mlopsctl_stage_medians_in_worker": {k: statistics.median(v) for k, v in ml_stages.items()},
        # the CLI, the plan, the pool and recording: the wall time no stage accounts for
        "mlopsctl_outside_stages": ml.median
        - sum(statistics.median(v) for v in ml_stages.values()),
        "first_apply_with_commit_s": first_apply,
        "first_dvc_repro_s": first_repro,
        "roc_auc": {
            "mlopsctl": ml_metrics.get("roc_auc"),
            "bare": bare_metrics.get("roc_auc"),
            "bare_one_process": one_metrics.get("roc_auc"),
        },
    }


def run_bare(b: Bench, root: Path, env: Mapping[str, str]) -> tuple[float, dict[str, float]]:
    """The four scripts one after another, as separate `python` processes."""
    steps = {}
    snap = LOAD.snapshot()
    start = time.perf_counter()
    for script, args, _deps in repos.BARE_STEPS:
        cmd = [sys.executable, f"src/{script}", *args]
        steps[script.removesuffix(".py")] = b.timed(cmd, root, env=env)
    seconds = time.perf_counter() - start
    LOAD.since(snap)
    return seconds, steps


def by_hand(b: Bench, root: Path, groups: Sequence[Sequence[str]]) -> float:
    """The four use cases' pipelines by hand: one `one_process.py --same-outputs` process per
    group of output directories, the groups side by side; wall time until the last one ends.

    Each process imports pandas and scikit-learn once and runs its group one after another, as
    a worker of the local pool does: one group of four is `--jobs 1`, two groups of two are
    `--jobs 2` with a perfect split and no tool around it (one thread each, as the use cases ask).
    """
    env = {**b.env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    cmd = [sys.executable, "src/one_process.py", "--same-outputs", "data/customers.csv"]
    snap = LOAD.snapshot()
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [*cmd, *group], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for group in groups
    ]
    errors = [p.communicate()[1] for p in procs]
    seconds = time.perf_counter() - start
    LOAD.since(snap)
    for p, err in zip(procs, errors, strict=True):
        if p.returncode != 0:
            raise RuntimeError(
                f"one_process.py in {root} exited with {p.returncode}:\n{err[-3000:]!r}"
            )
    return seconds


def run_one_process(
    b: Bench, root: Path, env: Mapping[str, str], same_outputs: bool = False
) -> float:
    """The same four steps in one `python` process (benchmarks/bare/one_process.py); with
    *same_outputs*, writing every file mlopsctl's stages write (the same work)."""
    if same_outputs:  # it imports mlopsctl (the skops writer, the reference profile)
        env = {**env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        cmd = [sys.executable, "src/one_process.py", "--same-outputs", "data/customers.csv"]
        return b.timed([*cmd, "out-same"], root, env=env)
    cmd = [sys.executable, "src/one_process.py", "data/customers.csv", "out-one"]
    return b.timed(cmd, root, env=env)


# --- 3b. four independent use cases: --jobs 1, --jobs 2, a 2-worker dask LocalCluster -----------


def start_local_cluster(b: Bench) -> tuple[Any, str] | None:
    """A dask.distributed LocalCluster (2 worker processes, 1 thread each), or None without dask."""
    try:
        from dask.distributed import LocalCluster
    except ImportError:
        return None
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    )
    b.log(f"usecases: LocalCluster at {cluster.scheduler_address}")
    return cluster, str(cluster.scheduler_address)


def bench_usecases(b: Bench, rows: int) -> dict[str, Any]:
    """Four independent use cases (the real pipeline each), forced: one job, two, a dask cluster.

    The local runs come first, with no cluster alive: an idle LocalCluster keeps ~0.2 cores busy
    (heartbeats), which would tax `--jobs 2` (both cores in use) more than `--jobs 1`. The
    cluster is started for its own runs only, after one warm-up apply.
    """
    csv = b.work / "usecases.csv"
    b.log(f"usecases: generating {rows} rows")
    repos.make_customers_csv(csv, rows)
    local = repos.make_usecases_repo(b.work / "usecases-local", csv, b.env)
    b.log("usecases: first run (warm-up)")
    b.apply(local, "--jobs", "2")
    bare = repos.make_bare_dir(b.work / "usecases-bare", csv)
    names = list(repos.USECASE_NAMES)
    one_group, two_groups = [names], [names[:2], names[2:]]
    by_hand(b, bare, one_group)  # warm-up (bytecode, page cache)
    one, two, dask = Series(), Series(), Series()
    hand1, hand2 = Series(), Series()
    stage_seconds: dict[str, list[float]] = {"jobs1": [], "jobs2": [], "dask": []}

    def measure(key: str, series: Series, root: Path, extra: list[str]) -> None:
        seconds, result = b.apply(root, "--force", "--no-commit", *extra)
        series.add(seconds)
        stage_seconds[key].append(sum(st["seconds"] for st in result["stages"]))

    for i in range(b.reps):
        b.log(f"usecases: local rep {i + 1}/{b.reps}")
        measure("jobs1", one, local, ["--jobs", "1"])
        measure("jobs2", two, local, ["--jobs", "2"])
        hand1.add(by_hand(b, bare, one_group))
        hand2.add(by_hand(b, bare, two_groups))
    metrics = {
        name: json.loads((local / f"reports/{name}/metrics.json").read_text("utf-8"))
        for name in repos.USECASE_NAMES
    }
    out: dict[str, Any] = {
        "rows": rows,
        "usecases": list(repos.USECASE_NAMES),
        "cores": len(os.sched_getaffinity(0)),
        "jobs1": one.to_json(),
        "jobs2": two.to_json(),
        "speedup_jobs2": ratio(one.median, two.median),
        # the hardware's own figure: the same work by hand in one process vs two side by side
        "by_hand_one_process": hand1.to_json(),
        "by_hand_two_processes": hand2.to_json(),
        "speedup_by_hand": ratio(hand1.median, hand2.median),
        "roc_auc": {k: v.get("roc_auc") for k, v in metrics.items()},
    }
    dask_note = "n/a (dask.distributed not installed)"
    started = start_local_cluster(b)
    if started is not None:
        cluster, address = started
        try:
            dask_root = repos.make_usecases_repo(b.work / "usecases-dask", csv, b.env, address)
            b.log("usecases: dask first run (warm-up)")
            proc = b.run([b.mlopsctl, "apply", "--json"], dask_root, ok=(0, 1))[1]
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["?"])[-1][:200]
                dask_note = f"n/a (executor not available): {last}"
            else:
                for i in range(b.reps):
                    b.log(f"usecases: dask rep {i + 1}/{b.reps}")
                    measure("dask", dask, dask_root, [])
                dask_metrics = {
                    name: json.loads(
                        (dask_root / f"reports/{name}/metrics.json").read_text("utf-8")
                    )
                    for name in repos.USECASE_NAMES
                }
                out["dask_metrics_identical"] = dask_metrics == metrics
        finally:
            cluster.close()
    out["stage_seconds_sum"] = {k: statistics.median(v) for k, v in stage_seconds.items() if v}
    if dask.samples:
        out["dask_local_cluster"] = dask.to_json()
        out["speedup_dask"] = ratio(one.median, dask.median)
    else:
        out["dask_local_cluster"] = dask_note
    return out


# --- 4. first hash of a 1 GiB file ---------------------------------------------------------------


def bench_hash(b: Bench, size: int) -> dict[str, Any]:
    from mlopsctl.plan.hashing import CACHE_FILE, HashCache, file_md5

    tmp = Path(tempfile.mkdtemp(prefix="mlopsctl-bench-hash-", dir="/tmp"))
    try:
        path = tmp / "big.bin"
        b.log(f"hash: writing {size / GiB:.2f} GiB to {path}")
        block = os.urandom(64 * MiB)
        with path.open("wb") as fh:
            written = 0
            while written < size:
                chunk = block[: size - written]
                fh.write(chunk)
                written += len(chunk)
            fh.flush()
            os.fsync(fh.fileno())

        def md5sum() -> str:
            return b.run(["md5sum", str(path)], tmp)[1].stdout.split()[0]

        expected = md5sum()  # also warms the page cache
        series = {name: Series() for name in ("md5sum", "file_md5", "HashCache.md5 cold")}
        cold = {name: Series() for name in ("md5sum", "file_md5")}
        cached, cached_lookup = Series(), Series()
        for i in range(b.reps):
            b.log(f"hash: rep {i + 1}/{b.reps}")
            series["md5sum"].add(timed_call(md5sum, expected))
            series["file_md5"].add(timed_call(partial(file_md5, path), expected))
            (tmp / CACHE_FILE).unlink(missing_ok=True)
            cache = HashCache(tmp)
            series["HashCache.md5 cold"].add(timed_call(partial(cache.md5, "big.bin"), expected))
            cache.save()
            # the second lookup, as the next `mlopsctl plan` does it: load the cache, stat, reuse
            start = time.perf_counter()
            again = HashCache(tmp)
            got = again.md5("big.bin")
            cached.add(time.perf_counter() - start)
            if got != expected or again.hashed:
                raise RuntimeError("the cached lookup read the file again")
            cached_lookup.add(timed_call(partial(again.md5, "big.bin"), expected))
            # a read from disk: the file's pages dropped from the page cache first
            for name, fn in (("md5sum", md5sum), ("file_md5", partial(file_md5, path))):
                evict(path)
                cold[name].add(timed_call(fn, expected))
        out: dict[str, Any] = {"bytes": size, "md5": expected, "page_cache": {}, "from_disk": {}}
        base = size / MiB
        for name, s in series.items():
            out["page_cache"][name] = {
                **s.to_json(),
                "MiB_per_s": base / s.median,
                "throughput_vs_md5sum": ratio(series["md5sum"].median, s.median),
            }
        for name, s in cold.items():
            out["from_disk"][name] = {
                **s.to_json(),
                "MiB_per_s": base / s.median,
                "throughput_vs_md5sum": ratio(cold["md5sum"].median, s.median),
            }
        out["cached_second_lookup_incl_cache_load"] = cached.to_json()
        out["cached_lookup_in_memory"] = cached_lookup.to_json()
        out["hashlib_openssl"] = hashlib.md5(usedforsecurity=False).name
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def timed_call(fn: Callable[[], str | None], expected: str) -> float:
    snap = LOAD.snapshot()
    start = time.perf_counter()
    got = fn()
    seconds = time.perf_counter() - start
    LOAD.since(snap)
    if got != expected:
        raise RuntimeError(f"md5 mismatch: {got} != {expected}")
    return seconds


def evict(path: Path) -> None:
    """Drop *path*'s pages from the page cache (its next read comes from the disk)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


# --- the machine, the targets, the tables ---------------------------------------------------------


def machine(b: Bench) -> dict[str, Any]:
    def first(path: str, key: str) -> str:
        try:
            for line in Path(path).read_text("utf-8").splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "unknown"

    def version(cmd: Sequence[str]) -> str:
        try:
            return b.run(cmd, b.work)[1].stdout.strip().splitlines()[-1]
        except (RuntimeError, OSError, IndexError):
            return "unknown"

    from importlib import metadata

    libs = {}
    for dist in ("mlopsctl", "dvc", "scikit-learn", "pandas", "numpy", "pyarrow"):
        try:
            libs[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            libs[dist] = "missing"
    mem_kb = first("/proc/meminfo", "MemTotal").split()[0]
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": first("/proc/cpuinfo", "model name"),
        "ram_gib": round(int(mem_kb) / 1024 / 1024, 1) if mem_kb.isdigit() else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "dvc_cli": version([b.dvc, "--version"]),
        "mlopsctl_cli": version([b.mlopsctl, "--version"]),
        "git": version(["git", "--version"]),
        "md5sum": version(["sh", "-c", "md5sum --version | head -1"]),
        "libraries": libs,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "mlopsctl_source": source_revision(b),
    }


def source_state() -> dict[str, list[int]]:
    """(mtime_ns, size) of every file of the mlopsctl package benchmarked: to notice edits."""
    import mlopsctl

    pkg = Path(mlopsctl.__file__).resolve().parent
    out = {}
    for path in sorted(pkg.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            st = path.stat()
            out[str(path.relative_to(pkg))] = [st.st_mtime_ns, st.st_size]
    return out


def source_revision(b: Bench) -> dict[str, Any]:
    """The git commit of the mlopsctl checkout benchmarked, and whether its code was edited."""
    repo = BENCH_DIR.parent
    try:
        commit = b.run(["git", "rev-parse", "HEAD"], repo)[1].stdout.strip()
        changed = b.run(["git", "status", "--porcelain", "--", "mlopsctl"], repo)[1].stdout
    except (RuntimeError, OSError):
        return {"commit": "unknown", "modified_files": []}
    return {"commit": commit, "modified_files": [line[3:] for line in changed.splitlines()]}


def nearest(values: Sequence[int], want: int) -> int:
    return min(values, key=lambda v: (abs(v - want), -v))


def targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    noop = results.get("noop")
    if noop:
        row = max(noop["rows"], key=lambda r: r["stages"])
        out.append(
            {
                "benchmark": f"1. no-op plan / no-op dvc status, {row['stages']} stages",
                "value": row["plan_over_status"],
                "target": "<= 0.10x",
                "pass": row["plan_over_status"] <= 0.10,
            }
        )
    ex = results.get("executor")
    if ex and len(ex["rows"]) > 1:
        sized = ex["rows"][1:]
        at = nearest([r["custom_stages"] for r in sized], 50)
        row = next(r for r in sized if r["custom_stages"] == at)
        out.append(
            {
                "benchmark": f"2. apply --force / dvc repro --force, per stage, {at} stages",
                "value": row["marginal_ratio"],
                "target": "<= 0.10x",
                "pass": row["marginal_ratio"] <= 0.10,
            }
        )
        largest = sized[-1]
        if largest["custom_stages"] != at:
            growth = ratio(
                largest["mlopsctl_per_stage_marginal"], row["mlopsctl_per_stage_marginal"]
            )
            out.append(
                {
                    "benchmark": (
                        f"2. mlopsctl per-stage cost flat: {largest['custom_stages']} vs {at} "
                        "stages"
                    ),
                    "value": growth,
                    "target": "<= 1.5x (flat)",
                    "pass": growth <= 1.5,
                }
            )
    pipe = results.get("pipeline")
    if pipe:
        out.append(
            {
                "benchmark": f"3. {pipe['rows']}-row pipeline, mlopsctl apply / bare scripts",
                "value": pipe["mlopsctl_over_bare"],
                "target": "<= 1.00x",
                "pass": pipe["mlopsctl_over_bare"] <= 1.0,
            }
        )
    if pipe and "mlopsctl_over_same_work" in pipe:
        value = pipe["mlopsctl_over_same_work"]
        out.append(
            {
                "benchmark": (
                    f"3. {pipe['rows']}-row pipeline, mlopsctl apply / the same work in one bare "
                    "process (`one_process.py --same-outputs`)"
                ),
                "value": value,
                "target": "<= 1.10x",
                "pass": value <= 1.1,
            }
        )
    if pipe and "mlopsctl_over_one_process" in pipe:
        out.append(
            {
                "benchmark": (
                    f"3. {pipe['rows']}-row pipeline, mlopsctl apply / the 4 steps alone in one "
                    "bare process (fewer outputs)"
                ),
                "value": pipe["mlopsctl_over_one_process"],
                "target": "reported",
                "pass": None,
            }
        )
    cold = results.get("cold")
    if cold:
        at = nearest([r["stages"] for r in cold["rows"]], 200)
        row = next(r for r in cold["rows"] if r["stages"] == at)
        out.append(
            {
                "benchmark": (
                    f"1b. cold plan (fresh clone) / cold dvc status, {row['stages']} stages"
                ),
                "value": row["cold_ratio"],
                "target": "<= 0.10x",
                "pass": row["cold_ratio"] <= 0.10,
            }
        )
    scale = results.get("scale")
    if scale and len(scale["rows"]) > 2:
        sized = scale["rows"][1:]
        big = sized[-1]
        out.append(
            {
                "benchmark": f"1c. no-op plan at {big['stages']} stages (seconds, wall)",
                "value": big["plan"]["median"],
                "unit": "s",
                "target": "<= 0.3 s",
                "pass": big["plan"]["median"] <= 0.3,
            }
        )
        at = nearest([r["stages"] for r in sized], 50)
        row = next(r for r in sized if r["stages"] == at)
        growth = ratio(big["apply_per_stage_marginal"], row["apply_per_stage_marginal"])
        out.append(
            {
                "benchmark": (f"1c. apply --force per-stage cost, {big['stages']} vs {at} stages"),
                "value": growth,
                "target": "<= 1.5x (linear)",
                "pass": growth <= 1.5,
            }
        )
    uc = results.get("usecases")
    if uc:
        out.append(
            {
                "benchmark": "3b. four use cases, --jobs 2 speed-up over --jobs 1",
                "value": uc["speedup_jobs2"],
                "target": ">= 1.70x",
                "pass": uc["speedup_jobs2"] >= 1.7,
            }
        )
        if "speedup_by_hand" in uc:
            out.append(
                {
                    "benchmark": (
                        "3b. the same work by hand, two processes over one (this machine's "
                        "ceiling for --jobs 2)"
                    ),
                    "value": uc["speedup_by_hand"],
                    "target": "reported",
                    "pass": None,
                }
            )
    hashing = results.get("hash")
    if hashing:
        for where in ("page_cache", "from_disk"):
            for name in ("file_md5", "HashCache.md5 cold"):
                if name not in hashing[where]:
                    continue
                value = hashing[where][name]["throughput_vs_md5sum"]
                label = "in page cache" if where == "page_cache" else "from disk"
                out.append(
                    {
                        "benchmark": (
                            f"4. first hash of {hashing['bytes'] / GiB:g} GiB, {name} / md5sum "
                            f"({label})"
                        ),
                        "value": value,
                        "target": ">= 0.90x throughput",
                        "pass": value >= 0.9,
                    }
                )
    return out


def s(x: float) -> str:
    return f"{x:.3f}"


def ms(x: float) -> str:
    return f"{x * 1000:.1f}"


def x_(x: float) -> str:
    return f"{x:.3f}x"


def markdown(report: Mapping[str, Any]) -> str:
    res = report["results"]
    lines: list[str] = []
    add = lines.append
    m = report["machine"]
    reps = f"medians of {report['config']['reps']} repetitions"
    if "noop" in res:
        reps += f" ({len(res['noop']['rows'][0]['mlopsctl_plan']['samples'])} for the no-op one)"
    add(
        f"Machine: {m['nproc']} cores ({m['cpu_model']}), {m['ram_gib']} GiB RAM, "
        f"Python {m['python']}, DVC {m['libraries']['dvc']}, "
        f"mlopsctl {m['libraries']['mlopsctl']}; {reps}. "
        f"`{report['command']}`, {report['started']}."
    )
    src = m["mlopsctl_source"]
    dirty = f", {len(src['modified_files'])} modified file(s)" if src["modified_files"] else ""
    add("")
    add(f"mlopsctl source: commit {src['commit'][:10]}{dirty}.")
    for change in report.get("source_changed_during", []):
        add("")
        add(
            f"**Warning: mlopsctl's source changed while `{change['benchmark']}` was measured** "
            f"({', '.join(change['files'])}): its numbers mix two versions; run it again."
        )
    add("")
    add("| benchmark | measured | target | result |")
    add("| --- | --- | --- | --- |")
    for t in report["targets"]:
        value = f"{t['value']:.3f} s" if t.get("unit") == "s" else x_(t["value"])
        add(f"| {t['benchmark']} | {value} | {t['target']} | {verdict(t['pass'])} |")
    noop = res.get("noop")
    if noop:
        add("")
        add("**1. No-op: `mlopsctl plan` vs `dvc status` and `dvc repro`** (seconds, wall)")
        add("")
        add(
            "| stages | mlopsctl plan | dvc status | dvc repro | plan / status | plan / repro "
            "| plan without .mlopsctl/ (fresh clone) |"
        )
        add("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in noop["rows"]:
            add(
                f"| {r['stages']} | {s(r['mlopsctl_plan']['median'])} | "
                f"{s(r['dvc_status']['median'])} | {s(r['dvc_repro']['median'])} | "
                f"{x_(r['plan_over_status'])} | {x_(r['plan_over_repro'])} | "
                f"{s(r['mlopsctl_plan_without_local_caches']['median'])} |"
            )
        ph = noop.get("plan_phases")
        if ph:
            lines += phases_table("a no-op plan", ph)
    if noop:
        add("")
        add(load_line(noop))
    lines.extend(markdown_cold_scale(res))
    ex = res.get("executor")
    if ex:
        add("")
        add(
            "**2. Forced run of trivial `cp` stages: `mlopsctl apply --force --no-commit` vs "
            "`dvc repro --force`** (whole commands; the 6 built-in stages are in every repo, "
            "so per-stage = (total - total with 0 custom stages) / custom stages)"
        )
        add("")
        add(
            "| custom stages | mlopsctl (s) | dvc (s) | mlopsctl ms/stage | dvc ms/stage | ratio "
            "| mlopsctl ms/stage, raw (total/all stages) | dvc ms/stage, raw |"
        )
        add("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in ex["rows"]:
            ml_s = r["mlopsctl_apply_force"]["median"]
            dvc_s = r["dvc_repro_force"]["median"]
            if r["custom_stages"] == 0:
                add(f"| 0 (baseline) | {s(ml_s)} | {s(dvc_s)} | | | | | |")
                continue
            add(
                f"| {r['custom_stages']} | {s(ml_s)} | {s(dvc_s)} | "
                f"{ms(r['mlopsctl_per_stage_marginal'])} | {ms(r['dvc_per_stage_marginal'])} | "
                f"{x_(r['marginal_ratio'])} | {ms(r['mlopsctl_per_stage_raw'])} | "
                f"{ms(r['dvc_per_stage_raw'])} |"
            )
        add("")
        add(
            "Where `apply --force --no-commit` spends its time (ms, main process, from "
            "`benchmarks/apply_phases.py`; indented rows are part of the row above):"
        )
        add("")
        sized = ex["rows"]
        add("| phase | " + " | ".join(f"{r['custom_stages']} custom" for r in sized) + " |")
        add("| --- |" + " ---: |" * len(sized))
        for key in sized[-1]["apply_phases"]["seconds"]:
            if key == "stages run":
                continue
            cells = [ms(r["apply_phases"]["seconds"].get(key, 0.0)) for r in sized]
            add(f"| {key.replace('  ', '&nbsp;&nbsp;')} | " + " | ".join(cells) + " |")
        f = ex["fit"]
        add("")
        add(
            f"Line fit over the sizes: mlopsctl {ms(f['mlopsctl']['per_stage_s'])} ms/stage + "
            f"{s(f['mlopsctl']['fixed_s'])} s fixed; DVC {ms(f['dvc']['per_stage_s'])} ms/stage "
            f"+ {s(f['dvc']['fixed_s'])} s fixed (slope ratio "
            f"{x_(ratio(f['mlopsctl']['per_stage_s'], f['dvc']['per_stage_s']))})."
        )
    if ex:
        add("")
        add(load_line(ex))
    pipe = res.get("pipeline")
    if pipe:
        add("")
        add(
            f"**3. Real pipeline, {pipe['rows']} rows, {pipe['estimator'].rsplit('.', 1)[1]}** "
            f"(seconds, wall; native threads: {pipe['threads'] or 'as the environment'})"
        )
        add("")
        add("| runner | median | min | max | vs bare |")
        add("| --- | ---: | ---: | ---: | ---: |")
        for label, key in (
            ("4 bare scripts, one after another", "bare_scripts"),
            ("the 4 steps in one bare process (`bare/one_process.py`)", "bare_one_process"),
            (
                "the same work in one bare process (`one_process.py --same-outputs`)",
                "bare_one_process_same_outputs",
            ),
            ("`mlopsctl apply --force --no-commit`", "mlopsctl_apply_force"),
            ("`dvc repro --force` (the 4 scripts as DVC stages)", "dvc_repro_force"),
        ):
            if key not in pipe:
                continue
            d = pipe[key]
            add(
                f"| {label} | {s(d['median'])} | {s(d['min'])} | {s(d['max'])} | "
                f"{x_(ratio(d['median'], pipe['bare_scripts']['median']))} |"
            )
        add("")
        bare_steps = ", ".join(f"{k} {s(v)}" for k, v in pipe["bare_step_medians"].items())
        ml_steps = ", ".join(
            f"{k} {s(v)}" for k, v in pipe["mlopsctl_stage_medians_in_worker"].items()
        )
        add(f"Bare scripts, per script (process wall): {bare_steps}.")
        add("")
        add(f"mlopsctl, per stage (inside the worker): {ml_steps}.")
        if "mlopsctl_outside_stages" in pipe:
            add("")
            add(
                "mlopsctl outside its stages (CLI, plan, pool, recording; apply's median minus the "
                f"stages' medians): {s(pipe['mlopsctl_outside_stages'])} s."
            )
        add("")
        auc = pipe["roc_auc"]
        add(
            "Same model: roc_auc "
            + ", ".join(f"{k} {v:.6f}" for k, v in auc.items() if isinstance(v, float))
            + "."
        )
        add("")
        add(load_line(pipe))
    lines.extend(markdown_usecases(res))
    hashing = res.get("hash")
    if hashing:
        add("")
        add(f"**4. First hash of a {hashing['bytes'] / GiB:.2f} GiB file**")
        add("")
        add("| method | where the bytes are | median (s) | MiB/s | throughput vs md5sum |")
        add("| --- | --- | ---: | ---: | ---: |")
        for where, label in (("page_cache", "page cache"), ("from_disk", "disk (evicted)")):
            for name, d in hashing[where].items():
                add(
                    f"| {name} | {label} | {s(d['median'])} | {d['MiB_per_s']:.0f} | "
                    f"{x_(d['throughput_vs_md5sum'])} |"
                )
        c = hashing["cached_second_lookup_incl_cache_load"]
        c2 = hashing["cached_lookup_in_memory"]
        add("")
        add(
            f"Second (cached) lookup: {c['median'] * 1e6:.0f} µs including loading the hash "
            f"cache file, {c2['median'] * 1e6:.1f} µs with the cache in memory (stat only)."
        )
        add("")
        add(load_line(hashing))
    return "\n".join(lines) + "\n"


def phases_table(what: str, ph: Mapping[str, float]) -> list[str]:
    """The table of plan_phases.py's phases (ms), with the heavy-import probes as yes/no."""
    rows = ["", f"Where {what}'s time goes at {int(ph['stages'])} stages (ms, medians):", ""]
    rows += ["| phase | ms |", "| --- | ---: |"]
    for k, v in ph.items():
        if k.endswith(" imported"):
            rows.append(f"| {k}? | {'yes' if v else 'no'} |")
        elif k != "stages":
            rows.append(f"| {k} | {ms(v)} |")
    return rows


def markdown_cold_scale(res: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    add = lines.append
    cold = res.get("cold")
    if cold:
        add("")
        add(
            "**1b. Fresh clone (CI): `mlopsctl plan` vs `dvc status`, both cold** (seconds, wall; "
            "`git clone` + the DVC cache copied + `dvc checkout`; before each cold run "
            "`.mlopsctl/` and DVC's site cache of the clone are deleted)"
        )
        add("")
        add(
            "| stages | plan cold | dvc status cold | cold ratio | plan warm | dvc status warm "
            "| warm ratio | plan cold / warm |"
        )
        add("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in cold["rows"]:
            add(
                f"| {r['stages']} | {s(r['cold_plan']['median'])} | "
                f"{s(r['cold_dvc_status']['median'])} | {x_(r['cold_ratio'])} | "
                f"{s(r['warm_plan']['median'])} | {s(r['warm_dvc_status']['median'])} | "
                f"{x_(r['warm_ratio'])} | {x_(r['cold_over_warm_plan'])} |"
            )
        ph = cold["rows"][-1].get("plan_phases_cold")
        if ph:
            lines += phases_table("a cold plan", ph)
        add("")
        add(load_line(cold))
    scale = res.get("scale")
    if scale:
        add("")
        add(
            "**1c. Scale sweep: no-op `mlopsctl plan` and `mlopsctl apply --force --no-commit` of "
            "chains of trivial stages** (seconds, wall; per stage = (total - total of the 6 "
            "built-in stages alone) / added stages)"
        )
        add("")
        add("| stages | plan | plan ms/stage | apply --force | apply ms/stage |")
        add("| ---: | ---: | ---: | ---: | ---: |")
        for r in scale["rows"]:
            if "apply_per_stage_marginal" not in r:
                add(
                    f"| {r['stages']} (built-in only) | {s(r['plan']['median'])} | | "
                    f"{s(r['apply_force']['median'])} | |"
                )
                continue
            add(
                f"| {r['stages']} | {s(r['plan']['median'])} | "
                f"{ms(r['plan_per_stage_marginal'])} | {s(r['apply_force']['median'])} | "
                f"{ms(r['apply_per_stage_marginal'])} |"
            )
        f = scale["fit"]
        add("")
        add(
            f"Line fits over the sizes: plan {ms(f['plan']['per_stage_s'])} ms/stage + "
            f"{s(f['plan']['fixed_s'])} s (worst point {f['plan']['worst_residual']:.0%} off the "
            f"line); apply {ms(f['apply_force']['per_stage_s'])} ms/stage + "
            f"{s(f['apply_force']['fixed_s'])} s (worst point "
            f"{f['apply_force']['worst_residual']:.0%} off the line)."
        )
        add("")
        add(load_line(scale))
    return lines


def markdown_usecases(res: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    add = lines.append
    uc = res.get("usecases")
    if not uc:
        return lines
    add("")
    add(
        f"**3b. Four independent use cases, {uc['rows']} rows each, "
        f"`apply --force --no-commit`, on {uc['cores']} cores** (seconds, wall)"
    )
    add("")
    add("| runner | median | min | max | speed-up over --jobs 1 | stage seconds (sum) |")
    add("| --- | ---: | ---: | ---: | ---: | ---: |")
    sums = uc.get("stage_seconds_sum", {})
    for label, key, speed in (
        ("local, `--jobs 1`", "jobs1", 1.0),
        ("local, `--jobs 2`", "jobs2", uc["speedup_jobs2"]),
        ("dask LocalCluster, 2 workers x 1 thread", "dask_local_cluster", uc.get("speedup_dask")),
    ):
        d = uc.get(key)
        if isinstance(d, str):
            add(f"| {label} | {d} | | | | |")
            continue
        if d is None:
            continue
        short = "dask" if key.startswith("dask") else key
        add(
            f"| {label} | {s(d['median'])} | {s(d['min'])} | {s(d['max'])} | "
            f"{x_(speed or float('nan'))} | {s(sums.get(short, float('nan')))} |"
        )
    for label, key, speed in (
        ("by hand: one process, the four in turn", "by_hand_one_process", 1.0),
        ("by hand: two processes side by side", "by_hand_two_processes", uc["speedup_by_hand"]),
    ):
        if key in uc:
            d = uc[key]
            add(
                f"| {label} | {s(d['median'])} | {s(d['min'])} | {s(d['max'])} | "
                f"{x_(speed)} (over one process) | |"
            )
    if "by_hand_one_process" in uc:
        add("")
        add(
            "By hand: `bare/one_process.py --same-outputs` (every file apply writes) per use case, "
            "imports paid once per process, one thread each: what two processes on this machine "
            "give for this work with no tool around it, the ceiling of the `--jobs 2` speed-up."
        )
    if "dask_metrics_identical" in uc:
        add("")
        add(f"dask metrics identical to the local executor's: {uc['dask_metrics_identical']}.")
    add("")
    add(load_line(uc))
    return lines


def others(obj: Any) -> list[float]:
    """Every "other processes" sample under *obj* (a benchmark's results)."""
    if isinstance(obj, dict):
        out = list(obj.get("other_processes_cores", []))
        for k, v in obj.items():
            if k != "other_processes_cores":
                out.extend(others(v))
        return out
    if isinstance(obj, list):
        return [x for v in obj for x in others(v)]
    return []


def load_line(obj: Any) -> str:
    samples = others(obj)
    if not samples:
        return ""
    busy = sum(1 for x in samples if x >= 0.25)
    return (
        f"Other processes on the machine during these measurements: median "
        f"{statistics.median(samples):.2f} cores, max {max(samples):.2f}; "
        f"{busy} of {len(samples)} samples with >= 0.25 cores busy elsewhere."
    )


def verdict(ok: bool | None) -> str:
    if ok is None:  # measured for the record, no target
        return "-"
    return "PASS" if ok else "**FAIL**"


# --- main -----------------------------------------------------------------------------------------


def compile_package(log: Callable[[str], None]) -> None:
    """Byte-compile the mlopsctl measured, as installing its wheel does.

    An editable checkout edited since its last import has stale bytecode, and with
    PYTHONDONTWRITEBYTECODE set (as on this machine) every run would compile those modules
    again: an import cost no installed copy pays.
    """
    import compileall

    import mlopsctl

    pkg = Path(mlopsctl.__file__).resolve().parent
    if not compileall.compile_dir(str(pkg), quiet=1):
        log(f"warning: could not byte-compile {pkg}: imports are measured uncompiled")


def wait_idle(minutes: float, log: Callable[[str], None]) -> None:
    """Wait until other processes use less than 0.2 cores over 10 s, or *minutes* pass."""
    deadline = time.perf_counter() + minutes * 60
    while True:
        snap = LOAD.snapshot()
        time.sleep(10)
        busy = LOAD.since(snap)
        if busy < 0.2:
            log(f"machine idle (other processes: {busy:.2f} cores)")
            return
        if time.perf_counter() > deadline:
            log(f"still busy after {minutes} min (other processes: {busy:.2f} cores); going on")
            return
        log(f"waiting for the machine to go idle (other processes: {busy:.2f} cores)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 repetitions, smaller sizes (~5 min)")
    p.add_argument("--sizes", help="stage counts, comma-separated (default 10,50,200)")
    p.add_argument("--reps", type=int, help="repetitions (default 5, --quick 3)")
    p.add_argument("--only", help="comma-separated subset of: " + ",".join(BENCHMARKS))
    p.add_argument("--rows", type=int, help="rows of the pipeline benchmark (default 200000)")
    p.add_argument(
        "--pipeline-threads",
        type=int,
        default=1,
        help="OMP/OPENBLAS/MKL_NUM_THREADS for the pipeline benchmark's three runners "
        "(default 1; 0: leave the environment's)",
    )
    p.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="MIN",
        help="first wait up to MIN minutes for other processes to leave the CPUs idle",
    )
    p.add_argument("--hash-mib", type=int, help="size of the hashed file in MiB (default 1024)")
    p.add_argument("--scale-sizes", help="stage counts of the scale sweep (default 10,50,200,1000)")
    p.add_argument(
        "--cold-sizes", help="stage counts of the fresh-clone benchmark (default 200,1000)"
    )
    p.add_argument(
        "--usecase-rows",
        type=int,
        help="rows of each of the four use cases of the speed-up benchmark (default 100000)",
    )
    p.add_argument("--workdir", type=Path, help="scratch directory (default: a new one in /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="only print the markdown tables of an earlier run's results file",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        print(markdown(json.loads(args.render.read_text("utf-8"))))
        return 0
    reps = args.reps or (3 if args.quick else 5)
    if reps < 1:
        sys.exit("--reps must be at least 1")
    sizes = [int(v) for v in args.sizes.split(",")] if args.sizes else [10, 50, 200]
    if args.quick and not args.sizes:
        sizes = [10, 50]
    only = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        sys.exit(f"--only: unknown benchmark(s) {', '.join(sorted(unknown))}")
    rows = args.rows or (50_000 if args.quick else 200_000)
    hash_bytes = (args.hash_mib or (256 if args.quick else 1024)) * MiB
    scale_sizes = (
        [int(v) for v in args.scale_sizes.split(",")]
        if args.scale_sizes
        else ([10, 50, 200] if args.quick else [10, 50, 200, 1000])
    )
    cold_sizes = (
        [int(v) for v in args.cold_sizes.split(",")]
        if args.cold_sizes
        else ([200] if args.quick else [200, 1000])
    )
    usecase_rows = args.usecase_rows or (20_000 if args.quick else 100_000)

    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", file=sys.stderr, flush=True)

    compile_package(log)
    if args.wait_idle > 0:
        wait_idle(args.wait_idle, log)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mlopsctl-bench-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    b = Bench(work, reps, log)
    report: dict[str, Any] = {
        "command": " ".join(["python benchmarks/run.py", *(argv or sys.argv[1:])]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {
            "reps": reps,
            "sizes": sizes,
            "only": only,
            "quick": args.quick,
            "pipeline_rows": rows,
            "pipeline_threads": args.pipeline_threads,
            "hash_bytes": hash_bytes,
            "scale_sizes": scale_sizes,
            "cold_sizes": cold_sizes,
            "usecase_rows": usecase_rows,
            "workdir": str(work),
        },
        "machine": machine(b),
        "results": {},
    }
    threads = args.pipeline_threads or None
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "noop": lambda: bench_noop(b, sizes),
        "cold": lambda: bench_cold(b, cold_sizes),
        "scale": lambda: bench_scale(b, scale_sizes),
        "usecases": lambda: bench_usecases(b, usecase_rows),
        "executor": lambda: bench_executor(b, sizes),
        "pipeline": lambda: bench_pipeline(b, rows, threads),
        "hash": lambda: bench_hash(b, hash_bytes),
    }
    report["source_changed_during"] = []
    try:
        for name in BENCHMARKS:
            if name not in only:
                continue
            before = source_state()
            report["results"][name] = runners[name]()
            after = source_state()
            if after != before:  # someone edited mlopsctl while it was being measured
                changed = sorted(
                    k for k in before.keys() | after.keys() if before.get(k) != after.get(k)
                )
                report["source_changed_during"].append({"benchmark": name, "files": changed})
                log(f"warning: mlopsctl's source changed during {name}: {', '.join(changed)}")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    report["targets"] = targets(report["results"])
    report["seconds"] = time.perf_counter() - started
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    custom = (
        args.only
        or args.sizes
        or args.reps
        or args.rows
        or args.hash_mib
        or args.scale_sizes
        or args.cold_sizes
        or args.usecase_rows
    )
    kind = "partial" if custom else "quick" if args.quick else "full"
    out = RESULTS_DIR / f"{stamp}-{kind}.json"
    out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", "utf-8")
    table = markdown(report)
    (RESULTS_DIR / f"{stamp}-{kind}.md").write_text(table, "utf-8")
    print(table)
    log(f"done in {report['seconds'] / 60:.1f} min; raw results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
