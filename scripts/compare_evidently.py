"""Compare mlopsctl's drift statistics with Evidently 0.7's on the same data.

Evidently does not import with pandas 3, so it runs in its own virtualenv:

    python3 -m venv /tmp/ev-venv
    /tmp/ev-venv/bin/pip install "evidently>=0.7,<0.8" "pandas<3"
    python scripts/compare_evidently.py [--evidently-python /tmp/ev-venv/bin/python] [--json]

Two scenarios on a credit-like table (reference 20,000 rows; current 20,000 rows):
``same`` draws the batch from the training distribution; ``drifted`` shifts income by +0.5
standard deviations, doubles the spread of age and changes the contract mix. For each column
the table shows three PSI values:

- ``mlopsctl``: what ``mlopsctl monitor`` reports (reference-decile bins from the profile);
- ``same bins``: mlopsctl's :func:`~mlopsctl.monitor.stats.psi` on Evidently's bins (equal
  width over both samples, Sturges' count, for numeric columns with more than 20 values; one bin
  per value otherwise);
- ``evidently``: ``Report([DataDriftPreset(method="psi", threshold=T)])``.

``same bins`` must equal ``evidently`` (the formula and the empty-bin rule are the same), and
the verdicts of ``mlopsctl`` must equal Evidently's. The data goes from one interpreter to the
other as ``.npy`` files, so both see the same bits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

NUMERIC = ["income", "age", "balance", "n_products"]
CATEGORICAL = ["contract"]
COLUMNS = [*NUMERIC, *CATEGORICAL]
THRESHOLD = 0.2
DEFAULT_EVIDENTLY_PYTHON = os.environ.get("EVIDENTLY_PYTHON", "/tmp/ev-venv/bin/python")


def credit(n: int, seed: int, shift: float = 0.0, scale: float = 1.0, mix: Any = None) -> Any:
    """A credit-like table (shared with benchmarks/monitor_drift.py)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.normal(50_000 + shift * 12_000, 12_000, n),
            "age": 40 + rng.normal(0, 11, n) * scale,
            "balance": np.where(rng.random(n) < 0.3, 0.0, rng.lognormal(7, 1, n)),
            "n_products": rng.integers(1, 5, n),
            "contract": rng.choice(["monthly", "yearly", "two_year"], n, p=mix or [0.5, 0.3, 0.2]),
        }
    )


SCENARIOS = {
    "same": {"seed": 1},
    "drifted": {"seed": 2, "shift": 0.5, "scale": 2.0, "mix": [0.2, 0.3, 0.5]},
}


def save(frame: Any, directory: Path) -> None:
    import numpy as np

    directory.mkdir(parents=True, exist_ok=True)
    for name in COLUMNS:
        np.save(
            directory / f"{name}.npy", frame[name].to_numpy(dtype=None if name in NUMERIC else str)
        )


def load(directory: Path) -> Any:
    import numpy as np
    import pandas as pd

    return pd.DataFrame({name: np.load(directory / f"{name}.npy") for name in COLUMNS})


# --- the Evidently side (runs in Evidently's venv; imports nothing of mlopsctl) ---------------


def run_evidently(data: Path, threshold: float) -> dict[str, Any]:
    """PSI per column and the drift verdicts, from Evidently's DataDriftPreset; seconds timed."""
    import time

    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur = load(data / "reference"), load(data / "current")
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    start = time.perf_counter()
    report = Report([DataDriftPreset(method="psi", threshold=threshold)])
    snapshot = report.run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    seconds = time.perf_counter() - start
    values = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            values[config["column"]] = float(metric["value"])
    # ValueDrift's verdict: value >= threshold (Evidently's PSI rule)
    return {
        "values": values,
        "drifted": {k: v >= threshold for k, v in values.items()},
        "seconds": seconds,
    }


# --- the mlopsctl side --------------------------------------------------------------------------


def same_bins_psi(ref: Any, cur: Any, name: str) -> float:
    """mlopsctl's psi() on the bins Evidently would use for this column."""
    import numpy as np

    from mlopsctl.monitor.stats import psi, sturges_binning

    r, c = ref[name].dropna(), cur[name].dropna()
    if name in NUMERIC and r.nunique() > 20:
        edges = sturges_binning(r.to_numpy(np.float64), c.to_numpy(np.float64))
        rc, cc = np.histogram(r, edges)[0], np.histogram(c, edges)[0]
    else:
        keys = sorted(set(r.unique()) | set(c.unique()))
        rv, cv = r.value_counts(), c.value_counts()
        rc = np.array([rv.get(k, 0) for k in keys])
        cc = np.array([cv.get(k, 0) for k in keys])
    return psi(rc, cc, THRESHOLD)[0]


def compare(evidently_python: str, rows: int = 20_000) -> list[dict[str, Any]]:
    """One record per (scenario, column): the three PSI values and the two verdicts."""
    from mlopsctl.monitor.check import Settings, check
    from mlopsctl.monitor.profile import build_profile

    reference = credit(rows, seed=0)
    profile = build_profile(reference, NUMERIC, CATEGORICAL)
    out = []
    with tempfile.TemporaryDirectory(prefix="mlopsctl-evidently-") as tmp:
        save(reference, Path(tmp) / "reference")
        for scenario, params in SCENARIOS.items():
            current = credit(rows, **params)  # type: ignore[arg-type]
            save(current, Path(tmp) / "current")
            ours = check(
                "compare", profile, load(Path(tmp) / "current"), Settings(threshold=THRESHOLD)
            )
            theirs = evidently(evidently_python, Path(tmp))
            ref, cur = load(Path(tmp) / "reference"), load(Path(tmp) / "current")
            for f in ours.features:
                out.append(
                    {
                        "scenario": scenario,
                        "column": f.name,
                        "mlopsctl": f.value,
                        "mlopsctl_drifted": f.drifted,
                        "same_bins": same_bins_psi(ref, cur, f.name),
                        "evidently": theirs["values"][f.name],
                        "evidently_drifted": theirs["drifted"][f.name],
                    }
                )
    return out


def evidently(python: str, data: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [python, __file__, "--run-evidently", str(data), "--threshold", str(THRESHOLD)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if proc.returncode != 0:
        raise SystemExit(f"Evidently failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def table(records: list[dict[str, Any]]) -> str:
    lines = [
        f"PSI, threshold {THRESHOLD} (drift: mlopsctl value > T, Evidently value >= T)",
        "",
        "| scenario | column | mlopsctl (decile bins) | same bins as Evidently | Evidently 0.7 "
        "| mlopsctl verdict | Evidently verdict |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for r in records:
        lines.append(
            f"| {r['scenario']} | {r['column']} | {r['mlopsctl']:.6f} | {r['same_bins']:.6f} "
            f"| {r['evidently']:.6f} | {'drift' if r['mlopsctl_drifted'] else 'ok'} "
            f"| {'drift' if r['evidently_drifted'] else 'ok'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--evidently-python", default=DEFAULT_EVIDENTLY_PYTHON)
    parser.add_argument("--json", action="store_true", help="print the records as JSON")
    parser.add_argument("--run-evidently", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--threshold", type=float, default=THRESHOLD, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_evidently:
        print(json.dumps(run_evidently(Path(args.run_evidently), args.threshold)))
        return 0
    if not Path(args.evidently_python).exists():
        print(f"no Evidently interpreter at {args.evidently_python} (see --help)", file=sys.stderr)
        return 2
    records = compare(args.evidently_python)
    print(json.dumps(records, indent=2) if args.json else table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
