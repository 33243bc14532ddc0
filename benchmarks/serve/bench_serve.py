"""`mlopsctl serve` vs MLflow 3.x `mlflow models serve`: single-row POSTs from 8 clients.

Same model shape on both sides (median impute + standard scale numeric, most-frequent impute +
one-hot categorical, LogisticRegression) fitted on the same generated credit-like table, same
machine, same run. The load is Debian's `hey` (closed loop: each of the C clients sends its next
request when the previous one is answered). Then 400 distinct rows are posted one per request
from 8 concurrent threads to mlopsctl and compared, bit for bit, with one-row ``predict_proba``
of the same model file.

    .venv/bin/python benchmarks/serve/bench_serve.py --mlflow-venv /tmp/mlflow-venv

MLflow is installed in a separate venv (`python -m venv /tmp/mlflow-venv && /tmp/mlflow-venv/
bin/pip install 'mlflow>=3,<4' scikit-learn pandas`); `mlflow models serve --env-manager local`
runs with that venv's bin first on PATH.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parents[1]
NUMERIC = ["age", "income", "debt_ratio", "credit_limit", "months_employed", "open_loans"]
CATEGORICAL = ["home", "purpose", "region"]

USECASE = """\
apiVersion: mlopsctl/v1
kind: UseCase
metadata: {name: credit}
goal:
  problem: binary_classification
  target: default
  metrics: {roc_auc: {min: 0.6}}
data:
  sources: {loans: {format: csv, path: data/loans.csv}}
  features:
    numeric: [age, income, debt_ratio, credit_limit, months_employed, open_loans]
    categorical: [home, purpose, region]
  split: {method: random, test_size: 0.2, stratify: true, seed: 0}
model:
  estimator: sklearn.linear_model.LogisticRegression
  params: {max_iter: 1000}
  preprocessing: {numeric: standard, categorical: onehot, impute: median}
deploy:
  target: rest
  rest: {host: 127.0.0.1, port: 8080}
"""

MLFLOW_TRAIN = """\
import sys
import pandas as pd, mlflow.sklearn
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
num, cat = {num!r}, {cat!r}
frame = pd.read_csv(sys.argv[1])
x, y = frame[num + cat], frame["default"]
pre = ColumnTransformer([
    ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")),
                          ("scale", StandardScaler())]), num),
    ("categorical", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                              ("encode", OneHotEncoder(handle_unknown="ignore",
                                                       sparse_output=False))]), cat),
], sparse_threshold=0)
model = Pipeline([("preprocess", pre), ("model", LogisticRegression(max_iter=1000))]).fit(x, y)
kw = {{}}
try:
    mlflow.sklearn.save_model(model, sys.argv[2], signature=infer_signature(x, model.predict(x)),
                              serialization_format="skops", skops_trusted_types=["numpy.dtype"])
except TypeError:  # an MLflow without skops support: its default (cloudpickle)
    mlflow.sklearn.save_model(model, sys.argv[2], signature=infer_signature(x, model.predict(x)))
"""


def credit_table(n: int, seed: int = 0) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "income": rng.lognormal(10.5, 0.5, n).round(0),
            "debt_ratio": rng.beta(2, 5, n).round(3),
            "credit_limit": rng.gamma(2.0, 4000.0, n).round(0),
            "months_employed": rng.integers(0, 480, n).astype(float),
            "open_loans": rng.integers(0, 12, n).astype(float),
            "home": rng.choice(["rent", "own", "mortgage"], n),
            "purpose": rng.choice(["car", "house", "education", "business", "other"], n),
            "region": rng.choice(["north", "south", "east", "west"], n),
        }
    )
    for col in ("income", "months_employed"):
        frame.loc[rng.random(n) < 0.03, col] = np.nan
    logit = (
        -1.0
        + 3.0 * frame["debt_ratio"]
        - 0.00002 * frame["income"].fillna(36000)
        + 0.15 * frame["open_loans"]
        + (frame["home"] == "rent") * 0.5
    )
    frame["default"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text('utf-8', 'replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as res:
                if res.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not come up")
        time.sleep(0.5)


def hey(url: str, body: Path, n: int, c: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            "hey",
            "-n",
            str(n),
            "-c",
            str(c),
            "-m",
            "POST",
            "-T",
            "application/json",
            "-D",
            str(body),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = {int(p): float(s) * 1000 for p, s in re.findall(r"(\d+)%+ in ([\d.]+) secs", out)}
    codes = {int(k): int(v) for k, v in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    errors = re.search(r"Error distribution:(.*)", out, re.S)
    return {
        "rps": rps,
        "p50_ms": pct.get(50),
        "p99_ms": pct.get(99),
        "codes": codes,
        "ok": codes.get(200, 0),
        "errors": (n - codes.get(200, 0)),
        "error_text": errors.group(1).strip()[:500] if errors else "",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mlflow-venv", default="/tmp/mlflow-venv")
    ap.add_argument("-n", type=int, default=5000, help="requests per measured run")
    ap.add_argument("-c", type=int, default=8, help="concurrent clients")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (median reported)")
    ap.add_argument("--rows", type=int, default=20000, help="training rows")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if shutil.which("hey") is None:
        raise SystemExit("needs Debian's `hey` (apt-get install hey)")
    mlflow_bin = Path(args.mlflow_venv) / "bin"
    if not (mlflow_bin / "mlflow").exists():
        raise SystemExit(f"no MLflow in {args.mlflow_venv} (see this file's docstring)")

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "NO_COLOR": "1", "PYTHONPATH": str(SOURCE)}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # --- the mlopsctl project: apply trains, gates and writes the bundle
        repo = work / "repo"
        (repo / "data").mkdir(parents=True)
        (repo / "usecases").mkdir()
        table = credit_table(args.rows)
        table.to_csv(repo / "data/loans.csv", index=False)
        (repo / "mlopsctl.yaml").write_text(
            "apiVersion: mlopsctl/v1\nkind: Project\nusecases: ['usecases/*.yaml']\n", "utf-8"
        )
        (repo / "usecases/credit.yaml").write_text(USECASE, "utf-8")
        for cmd in (
            ["git", "init", "-q", "-b", "main"],
            ["git", "config", "user.name", "bench"],
            ["git", "config", "user.email", "bench@example.com"],
            [str(Path(sys.executable).parent / "dvc"), "init", "-q"],
            ["git", "add", "-A"],
            ["git", "commit", "-q", "-m", "bench"],
            [sys.executable, "-m", "mlopsctl", "apply"],
        ):
            subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)

        # --- the MLflow model: the same pipeline, fitted in MLflow's venv on the same table
        mlflow_model = work / "mlflow-model"
        script = work / "mlflow_train.py"
        script.write_text(MLFLOW_TRAIN.format(num=NUMERIC, cat=CATEGORICAL), "utf-8")
        subprocess.run(
            [
                str(mlflow_bin / "python"),
                str(script),
                str(repo / "data/loans.csv"),
                str(mlflow_model),
            ],
            check=True,
            capture_output=True,
        )

        row = {k: (None if v != v else v) for k, v in table[NUMERIC + CATEGORICAL].iloc[0].items()}
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        body = work / "body.json"
        body.write_text(json.dumps({"dataframe_records": [row]}), "utf-8")

        mport, oport = free_port(), free_port()
        mlog, olog = work / "mlflow.log", work / "mlopsctl.log"
        menv = {
            **os.environ,
            "PATH": f"{mlflow_bin}:{os.environ['PATH']}",
            "MLFLOW_TRACKING_URI": f"file://{work}/mlruns",
        }
        procs.append(
            subprocess.Popen(
                [
                    str(mlflow_bin / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    str(mlflow_model),
                    "--env-manager",
                    "local",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(mport),
                ],
                env=menv,
                stdout=mlog.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "mlopsctl", "serve", "credit", "--port", str(oport)],
                cwd=repo,
                env=env,
                stdout=olog.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        wait_up(f"http://127.0.0.1:{mport}/health", procs[0], mlog)
        wait_up(f"http://127.0.0.1:{oport}/health", procs[1], olog)
        urls = {
            "mlflow": f"http://127.0.0.1:{mport}/invocations",
            "mlopsctl": f"http://127.0.0.1:{oport}/predict",
        }
        for url in urls.values():  # warm-up
            hey(url, body, 300, args.c)
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in urls}
        for _ in range(args.rounds):
            for name, url in urls.items():
                runs[name].append(hey(url, body, args.n, args.c))
        identical = check_identity(repo, f"http://127.0.0.1:{oport}/predict", table)
        with urllib.request.urlopen(f"http://127.0.0.1:{oport}/metrics") as res:
            metrics = res.read().decode()
        report(runs, identical, metrics, args)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=60)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


def check_identity(repo: Path, url: str, table: Any) -> tuple[int, int]:
    """Post 400 rows one per request from 8 threads; compare with one-row predict_proba."""
    sys.path.insert(0, str(SOURCE))
    from mlopsctl.stages.modelio import load_model

    model = load_model(repo / "artifacts/credit/deploy/model.skops")
    rows = table[NUMERIC + CATEGORICAL].iloc[:400]
    records = [
        {k: (None if v != v else (v.item() if hasattr(v, "item") else v)) for k, v in r.items()}
        for _, r in rows.iterrows()
    ]

    def post(rec: dict[str, Any]) -> list[float]:
        req = urllib.request.Request(
            url, json.dumps([rec]).encode(), {"content-type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=60) as res:
            probs: dict[str, float] = json.loads(res.read())["probabilities"][0]
            return [probs[k] for k in sorted(probs)]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        served = list(pool.map(post, records))
    same = sum(
        served[i] == model.predict_proba(rows.iloc[[i]])[0].tolist() for i in range(len(rows))
    )
    return same, len(rows)


def report(
    runs: dict[str, list[dict[str, Any]]], identical: tuple[int, int], metrics: str, args: Any
) -> None:
    def med(name: str, key: str) -> float:
        values = sorted(r[key] for r in runs[name])
        return (
            values[len(values) // 2]
            if len(values) % 2
            else sum(values[len(values) // 2 - 1 : len(values) // 2 + 1]) / 2
        )

    print(
        f"\n{args.n} single-row POSTs per run, {args.c} concurrent clients (hey), "
        f"{args.rounds} interleaved rounds, medians; cores: {os.cpu_count()}\n"
    )
    print("| server | requests/s | p50 ms | p99 ms | errors |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in runs:
        errors = sum(r["errors"] for r in runs[name])
        print(
            f"| {name} | {med(name, 'rps'):.0f} | {med(name, 'p50_ms'):.1f} | "
            f"{med(name, 'p99_ms'):.1f} | {errors} |"
        )
    ratio = med("mlopsctl", "rps") / med("mlflow", "rps")
    p99 = med("mlopsctl", "p99_ms") / med("mlflow", "p99_ms")
    print(
        f"\nmlopsctl / MLflow: {ratio:.1f}x requests/s (target >= 6x), "
        f"p99 {p99:.2f}x (target <= 0.2x)"
    )
    print(f"identical to one-row predict_proba: {identical[0]} of {identical[1]} rows")
    rows = re.search(r"^mlopsctl_predictions_total (\d+)", metrics, re.M)
    batches = re.search(r"^mlopsctl_predict_batches_total (\d+)", metrics, re.M)
    if rows and batches and int(batches.group(1)):
        print(f"mean micro-batch: {int(rows.group(1)) / int(batches.group(1)):.1f} rows")
    print("\nraw runs:", json.dumps(runs, indent=1))
    print(textwrap.dedent(""))


if __name__ == "__main__":
    main()
