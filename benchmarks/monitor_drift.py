"""Monitoring benchmarks: drift statistics against Evidently, and memory of a chunked check.

    python benchmarks/monitor_drift.py [--rows 1000000] [--reps 3] [--evidently-python PATH]
    python benchmarks/monitor_drift.py --memory [--csv-mib 200]

Speed: PSI drift of five columns of a credit-like table (4 numeric, 1 categorical), 1,000,000
reference rows vs 1,000,000 current rows, both frames in memory. mlopsctl (this venv) is timed
in process: building the reference profile (done once, at training time) and checking the
batch against it. Evidently 0.7 (its own venv, pandas < 3; see scripts/compare_evidently.py) is
timed around ``Report([DataDriftPreset(method="psi")]).run(...)`` only, data loading excluded.
Runs alternate (mlopsctl, Evidently, mlopsctl, ...); medians are reported, with both tools'
verdicts per column.

Memory: writes a CSV of about ``--csv-mib`` MiB, then in fresh processes measures the peak
resident memory (``VmHWM``) of (a) importing the libraries, (b) checking the CSV with
mlopsctl in chunks of 100,000 rows, (c) ``pandas.read_csv`` of the whole file, for scale.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "compare_evidently", ROOT / "scripts" / "compare_evidently.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def speed(rows: int, reps: int, evidently_python: str) -> dict[str, Any]:
    from mlopsctl.monitor.check import Settings, check
    from mlopsctl.monitor.profile import build_profile

    cmp = _compare()
    reference = cmp.credit(rows, seed=0)
    current = cmp.credit(rows, **cmp.SCENARIOS["drifted"])
    ours: dict[str, list[float]] = {"profile": [], "check": [], "total": []}
    theirs: list[float] = []
    evidently_result: dict[str, Any] = {}
    result = None
    with tempfile.TemporaryDirectory(prefix="mlopsctl-bench-") as tmp:
        cmp.save(reference, Path(tmp) / "reference")
        cmp.save(current, Path(tmp) / "current")
        for _ in range(reps):
            t0 = time.perf_counter()
            profile = build_profile(reference, cmp.NUMERIC, cmp.CATEGORICAL)
            t1 = time.perf_counter()
            result = check("bench", profile, current, Settings(threshold=cmp.THRESHOLD))
            t2 = time.perf_counter()
            ours["profile"].append(t1 - t0)
            ours["check"].append(t2 - t1)
            ours["total"].append(t2 - t0)
            evidently_result = cmp.evidently(evidently_python, Path(tmp))
            theirs.append(evidently_result["seconds"])
    assert result is not None
    verdicts = {
        f.name: {
            "mlopsctl": f.value,
            "mlopsctl_drifted": f.drifted,
            "evidently": evidently_result["values"][f.name],
            "evidently_drifted": evidently_result["drifted"][f.name],
        }
        for f in result.features
    }
    med = {k: statistics.median(v) for k, v in ours.items()}
    return {
        "rows": rows,
        "reps": reps,
        "mlopsctl_seconds": med,
        "mlopsctl_samples": ours,
        "evidently_seconds": statistics.median(theirs),
        "evidently_samples": theirs,
        "speedup_total": statistics.median(theirs) / med["total"],
        "speedup_check": statistics.median(theirs) / med["check"],
        "same_verdicts": all(
            v["mlopsctl_drifted"] == v["evidently_drifted"] for v in verdicts.values()
        ),
        "columns": verdicts,
    }


# --- memory -----------------------------------------------------------------------------------

# VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec
_PEAK = (
    "print([int(line.split()[1]) // 1024 for line in open('/proc/self/status') "
    "if line.startswith('VmHWM')][0])"
)
_IMPORTS = "import numpy, pandas, pyarrow, scipy.stats; import mlopsctl.monitor.check\n"
_CHECK = """
import json, sys
import pandas as pd
from mlopsctl.monitor.check import Settings, check
from mlopsctl.monitor.profile import loads
profile = loads(open(sys.argv[2]).read())
import time
start = time.perf_counter()
result = check("bench", profile, sys.argv[1], Settings(), chunk_rows=int(sys.argv[3]))
print(result.rows, time.perf_counter() - start)
"""
_READ_ALL = (
    "import sys, pandas as pd\ndf = pd.read_csv(sys.argv[1])\nprint(len(df), file=sys.stderr)\n"
)


def _run(code: str, *args: str) -> list[str]:
    """Run *code* in a fresh interpreter; its output lines, the last one its peak RSS in MiB."""
    proc = subprocess.run(
        [sys.executable, "-c", code + "\n" + _PEAK, *args],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    return proc.stdout.strip().splitlines()


def _peak_mib(code: str, *args: str) -> int:
    return int(_run(code, *args)[-1])


def memory(csv_mib: int) -> dict[str, Any]:
    from mlopsctl.monitor.profile import build_profile, dumps

    cmp = _compare()
    with tempfile.TemporaryDirectory(prefix="mlopsctl-bench-mem-") as tmp:
        csv = Path(tmp) / "batch.csv"
        part = cmp.credit(500_000, seed=9)
        with csv.open("w", encoding="utf-8") as fh:
            part.iloc[:0].to_csv(fh, index=False)
            rows = 0
            while csv.stat().st_size < csv_mib * 1024 * 1024:
                part.to_csv(fh, index=False, header=False)
                fh.flush()
                rows += len(part)
        profile = Path(tmp) / "profile.json"
        profile.write_text(dumps(build_profile(part, cmp.NUMERIC, cmp.CATEGORICAL)), "utf-8")
        size = csv.stat().st_size / 1024 / 1024
        chunked = _run(_IMPORTS + _CHECK, str(csv), str(profile), "100000")
        whole = _run(_IMPORTS + _CHECK, str(csv), str(profile), str(rows))
        return {
            "csv_mib": round(size, 1),
            "csv_rows": rows,
            "peak_mib_imports": _peak_mib(_IMPORTS),
            "peak_mib_check_chunks_of_100k_rows": int(chunked[-1]),
            "seconds_check_chunks_of_100k_rows": round(float(chunked[0].split()[1]), 2),
            "peak_mib_check_one_chunk": int(whole[-1]),
            "peak_mib_read_csv_whole": _peak_mib(_IMPORTS + _READ_ALL, str(csv)),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--evidently-python", default=_compare().DEFAULT_EVIDENTLY_PYTHON)
    parser.add_argument("--memory", action="store_true", help="the memory benchmark instead")
    parser.add_argument("--csv-mib", type=int, default=200)
    args = parser.parse_args()
    if args.memory:
        print(json.dumps(memory(args.csv_mib), indent=2))
        return 0
    if not Path(args.evidently_python).exists():
        print(f"no Evidently interpreter at {args.evidently_python}", file=sys.stderr)
        return 2
    print(json.dumps(speed(args.rows, args.reps, args.evidently_python), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
