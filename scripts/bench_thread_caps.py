#!/usr/bin/env python3
"""Time the house-prices example's train stage under `apply --jobs 2`, for several checkouts.

Each round makes a fresh repository per checkout as the README's quick start does (git init,
`mlopsctl init --example house-prices --remote DIR`), runs `mlopsctl apply --jobs 2 --json`
with that checkout first on PYTHONPATH and reads the train stage's seconds. Checkouts alternate
within a round, so that load on a shared machine falls on both alike.

    python scripts/bench_thread_caps.py --rounds 3 main=/work/main capped=.

Prints one JSON line per run, then the median train seconds per checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(code: Path, jobs: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(code), "DVC_NO_ANALYTICS": "1", "NO_COLOR": "1"}
    env.pop("CI", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        remote = ["--remote", str(Path(tmp) / "remote")]
        for args in (
            ["git", "init", "-q", "-b", "main"],
            ["git", "config", "user.name", "bench"],
            ["git", "config", "user.email", "bench@example.com"],
            [sys.executable, "-m", "mlopsctl", "init", "--example", "house-prices", *remote],
        ):
            subprocess.run(args, cwd=root, env=env, check=True, capture_output=True)
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "mlopsctl", "apply", "--jobs", jobs, "--json"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"apply failed with {code}:\n{proc.stdout}\n{proc.stderr}")
        stages = {s["id"]: s for s in json.loads(proc.stdout)["stages"]}
        train = stages["house-prices/train"]
        return {"train_s": train["seconds"], "apply_s": round(wall, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="+", help="NAME=PATH of an mlopsctl checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", default="2")
    args = parser.parse_args(argv)
    checkouts = [(c.split("=", 1)[0], Path(c.split("=", 1)[1]).resolve()) for c in args.checkouts]
    results: dict[str, list[float]] = {name: [] for name, _ in checkouts}
    for round_ in range(args.rounds):
        for name, code in checkouts:
            load = os.getloadavg()[0]
            result = run_once(code, args.jobs)
            results[name].append(result["train_s"])
            print(json.dumps({"round": round_ + 1, "checkout": name, "load1": load, **result}))
            sys.stdout.flush()
    for name, secs in results.items():
        print(f"{name}: train median {statistics.median(secs):.1f} s over {secs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
