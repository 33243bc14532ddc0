"""`mlopsctl serve` as users run it: a real uvicorn process on 127.0.0.1, a real httpx client.

One project (the regression example with a fast model, applied: a copy of test_deploy's
session template) is switched to a batch target, then to rest (deploy alone re-runs each time,
same model), so the served predictions can be compared with the batch output of the same rows
from the same model.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import ENV, git, mlopsctl
from .test_deploy import BATCH, BUNDLE, manifest, rest_project, set_deploy, set_model

pytestmark = pytest.mark.slow

FEATURES = (
    "area_m2",
    "rooms",
    "age_years",
    "distance_km",
    "neighbourhood",
    "energy_class",
    "has_garden",
)
REST = "  target: rest\n  rest: {host: 127.0.0.1, port: 8080, max_body_mb: 0.05}\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """`mlopsctl serve` in a subprocess; stopped (by its pid) at the end."""

    def __init__(
        self,
        root: Path,
        env: dict[str, str] | None = None,
        port: int | None = None,
        reload_interval: float = 0.2,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root.parent / f"serve-{self.port}.log"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlopsctl",
                "serve",
                "house-prices",
                "--port",
                str(self.port),
                "--reload-interval",
                str(reload_interval),
            ],
            cwd=root,
            env=env or ENV,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 300
        while True:
            assert self.proc.poll() is None, self.log.read_text("utf-8")
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)

    def stop(self) -> str:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        return self.log.read_text("utf-8")

    def wait_for_version(self, version: str) -> None:
        deadline = time.monotonic() + 120
        while httpx.get(self.url + "/health", timeout=10).json()["version"] != version:
            assert time.monotonic() < deadline, f"never switched to {version}"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(repo, batch output of the same model) with deploy.target rest applied."""
    base = tmp_path_factory.mktemp("serve")
    root = rest_project(tmp_path_factory, base)
    set_deploy(root, BATCH)
    mlopsctl(root, "apply", check=True)
    batch_output = base / "batch-predictions.csv"
    shutil.copy(root / "artifacts/house-prices/predictions.csv", batch_output)
    set_deploy(root, REST)
    mlopsctl(root, "apply", check=True)
    yield root, batch_output


@pytest.fixture(scope="module")
def server(project: tuple[Path, Path]) -> Iterator[Server]:
    srv = Server(project[0])
    yield srv
    srv.stop()


def records(n: int, start: int = 0) -> list[dict[str, Any]]:
    import pandas as pd

    frame = pd.read_csv(Path(__file__).parents[2] / "examples/house-prices/data/houses.csv")
    out = []
    for _, row in frame.iloc[start : start + n].iterrows():
        rec: dict[str, Any] = {}
        for f in FEATURES:
            value = row[f]
            rec[f] = None if pd.isna(value) else value.item() if hasattr(value, "item") else value
        out.append(rec)
    return out


def test_served_predictions_equal_the_batch_predictions_of_the_same_rows(
    project: tuple[Path, Path], server: Server
) -> None:
    import pandas as pd

    batch = pd.read_csv(project[1])
    rows = records(200)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        many = client.post("/predict", json=rows)
        assert many.status_code == 200, many.text
        body = many.json()
        assert body["model_version"] == manifest(project[0])["version"]
        assert body["predictions"] == list(batch["prediction"][:200])
        # one at a time, and in every accepted body form: the same numbers
        for i in (0, 7, 199):
            one = client.post("/predict", json=[rows[i]]).json()["predictions"]
            assert one == [batch["prediction"][i]]
        cols = list(FEATURES)
        forms = [
            {"records": rows[:3]},
            {"instances": rows[:3]},
            {"dataframe_records": rows[:3]},
            {
                "dataframe_split": {
                    "columns": cols,
                    "data": [[r[c] for c in cols] for r in rows[:3]],
                }
            },
        ]
        for form in forms:
            res = client.post("/predict", json=form)
            assert res.status_code == 200, (form, res.text)
            assert res.json()["predictions"] == list(batch["prediction"][:3])


def test_health_metadata_metrics_and_docs(project: tuple[Path, Path], server: Server) -> None:
    version = manifest(project[0])["version"]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/health").json() == {
            "status": "ok",
            "usecase": "house-prices",
            "version": version,
        }
        meta = client.get("/metadata").json()
        assert meta["manifest"]["version"] == version
        assert [f["name"] for f in meta["signature"]["features"]] == list(FEATURES)
        assert meta["metrics"]["rmse"] > 0
        client.post("/predict", json=records(1))
        metrics = client.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'mlopsctl_requests_total{method="POST",path="/predict",status="200"}' in metrics.text
        assert "mlopsctl_predict_latency_seconds_bucket" in metrics.text
        assert (
            f'mlopsctl_model_info{{usecase="house-prices",version="{version}"}} 1' in metrics.text
        )
        assert client.get("/docs").status_code == 200
        spec = client.get("/openapi.json").json()
        body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
        fields = spec["components"]["schemas"]["Record"]["properties"]
        assert set(fields) == set(FEATURES)  # /docs shows the model's real fields
        assert fields["neighbourhood"]["anyOf"][0]["enum"]
        assert len(body["schema"]["anyOf"]) == 5


def bad_requests() -> list[tuple[str, dict[str, Any]]]:
    good = records(1)[0]

    def rec(**change: Any) -> list[dict[str, Any]]:
        r = {**good, **change}
        return [{k: v for k, v in r.items() if v != "DROP"}]

    def raw(content: bytes, **headers: str) -> dict[str, Any]:
        return {"content": content, "headers": {"content-type": "application/json", **headers}}

    return [
        ("not JSON", raw(b"{not json")),
        ("empty body", raw(b"")),
        ("whitespace body", raw(b"   ")),
        ("a JSON string", {"json": "hello"}),
        ("a JSON number", {"json": 42}),
        ("null", raw(b"null")),
        ("empty list", {"json": []}),
        ("list of non-objects", {"json": [1, 2]}),
        ("missing field", {"json": rec(area_m2="DROP")}),
        ("number as string", {"json": rec(area_m2="132.9")}),
        ("boolean for a number", {"json": rec(rooms=True)}),
        ("list for a number", {"json": rec(area_m2=[1.0])}),
        ("object for a category", {"json": rec(neighbourhood={"a": 1})}),
        ("unseen category", {"json": rec(neighbourhood="atlantis")}),
        ("number for a category", {"json": rec(energy_class=3)}),
        ("NaN literal", raw(json.dumps(rec()).replace("132.9", "NaN").encode())),
        ("Infinity literal", raw(json.dumps(rec()).replace("132.9", "Infinity").encode())),
        ("huge integer", raw(json.dumps(rec()).replace("132.9", "1" + "0" * 400).encode())),
        ("unknown wrapper key", {"json": {"rows": rec()}}),
        ("two wrapper keys", {"json": {"records": rec(), "instances": rec()}}),
        ("records not a list", {"json": {"records": {"a": 1}}}),
        ("dataframe_split not an object", {"json": {"dataframe_split": [1]}}),
        ("dataframe_split ragged", {"json": {"dataframe_split": {"columns": ["a"], "data": [[]]}}}),
        (
            "dataframe_split bad columns",
            {"json": {"dataframe_split": {"columns": [1], "data": []}}},
        ),
        ("deeply nested", raw(b"[" * 100000 + b"]" * 100000)),
        ("oversized body", {"json": rec() * 2000}),
        ("invalid UTF-8", raw(b'[{"neighbourhood": "\xff\xfe"}]')),
    ]


@pytest.mark.parametrize("kind,request_kw", bad_requests(), ids=[k for k, _ in bad_requests()])
def test_bad_requests_get_a_4xx_naming_the_problem(
    server: Server, kind: str, request_kw: dict[str, Any]
) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        res = client.post("/predict", **request_kw)
        assert 400 <= res.status_code < 500, (kind, res.status_code, res.text)
        assert res.json()["error"], kind
        if kind.startswith("oversized"):
            assert res.status_code == 413
        if kind in ("missing field", "number as string", "unseen category"):
            assert res.status_code == 422
            assert res.json()["detail"][0]["loc"][-1] in FEATURES
        # the server keeps answering
        assert client.get("/health").status_code == 200
        assert client.post("/predict", json=records(1)).status_code == 200


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(
    server: Server,
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 999999999\r\n\r\n[{"
        )
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert httpx.get(server.url + "/health", timeout=30).status_code == 200


def test_other_methods_and_paths_get_a_4xx(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/predict").status_code == 405
        assert client.post("/nowhere", json=[]).status_code == 404
        assert client.delete("/health").status_code == 405


def test_a_new_bundle_is_swapped_in_without_a_failed_request(
    project: tuple[Path, Path], server: Server
) -> None:
    root = project[0]
    old = manifest(root)["version"]
    row = records(1)
    seen: list[tuple[int, str, float]] = []
    stop = threading.Event()

    def loop() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            while not stop.is_set():
                res = client.post("/predict", json=row)
                body = res.json() if res.status_code == 200 else {}
                seen.append(
                    (
                        res.status_code,
                        body.get("model_version", ""),
                        body.get("predictions", [0])[0],
                    )
                )

    client_thread = threading.Thread(target=loop)
    client_thread.start()
    try:
        set_model(root, alpha=30.0)  # retrain with a changed param
        mlopsctl(root, "apply", check=True)
        new = manifest(root)["version"]
        assert new != old
        server.wait_for_version(new)
        n = len(seen)
        while len(seen) < n + 20:  # a few more requests on the new version
            time.sleep(0.05)
    finally:
        stop.set()
        client_thread.join()
    assert [s for s in seen if s[0] != 200] == []
    versions = [v for _s, v, _p in seen]
    assert versions[0] == old and versions[-1] == new
    assert set(versions) == {old, new}
    # each version always gives one answer: no request saw half of a swap
    assert len({p for _s, v, p in seen if v == old}) == 1
    assert len({p for _s, v, p in seen if v == new}) == 1


def test_a_failed_gate_and_a_broken_bundle_leave_the_old_version_serving(
    project: tuple[Path, Path], server: Server
) -> None:
    root = project[0]
    serving = manifest(root)["version"]
    server.wait_for_version(serving)
    set_model(root, alpha=77.0, gate="r2: {min: 0.9999}")
    assert mlopsctl(root, "apply").returncode == 1
    assert manifest(root)["version"] == serving
    # a bundle whose model does not match its manifest (e.g. caught half-written): refused
    bundle = root / BUNDLE
    doc = manifest(root)
    doc["files"]["model.skops"] = "0" * 64
    doc["version"] = "broken"
    (bundle / "manifest.json.tmp").write_text(json.dumps(doc), "utf-8")
    os.replace(bundle / "manifest.json.tmp", bundle / "manifest.json")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        deadline = time.monotonic() + 120
        while 'mlopsctl_reloads_total{result="refused"} 1' not in client.get("/metrics").text:
            assert time.monotonic() < deadline, "the broken bundle was never looked at"
            time.sleep(0.2)
        assert client.get("/health").json()["version"] == serving
        assert client.post("/predict", json=records(1)).status_code == 200
    git(root, "checkout", "--", ".")


def test_bearer_token_from_the_environment(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    root = rest_project(tmp_path_factory, tmp_path)  # the fast model (alpha 1.0), applied
    secret = "s3cret-value-never-written"
    set_deploy(root, REST.rstrip("}\n") + ', token: "${env:HP_TOKEN}"}\n')
    mlopsctl(root, "apply", check=True, env={**ENV, "HP_TOKEN": secret})
    missing = mlopsctl(root, "serve", "house-prices")
    assert missing.returncode == 1 and "HP_TOKEN" in missing.stderr
    srv = Server(root, env={**ENV, "HP_TOKEN": secret})
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            assert client.post("/predict", json=records(1)).status_code == 401
            wrong = {"Authorization": "Bearer nope"}
            assert client.post("/predict", json=records(1), headers=wrong).status_code == 401
            basic = {"Authorization": "Basic " + secret}
            assert client.get("/metadata", headers=basic).status_code == 401
            good = {"Authorization": f"Bearer {secret}"}
            assert client.post("/predict", json=records(1), headers=good).status_code == 200
            assert client.get("/metadata", headers=good).status_code == 200
            assert client.get("/health").status_code == 200  # probes need no token
    finally:
        log = srv.stop()
    assert secret not in log
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert secret.encode() not in path.read_bytes(), path


def test_schemathesis_finds_no_server_error(server: Server, tmp_path: Path) -> None:
    st = Path(sys.executable).parent / "schemathesis"
    if not st.exists():
        pytest.skip("schemathesis is not installed")
    proc = subprocess.run(
        [
            str(st),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "60",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/health").status_code == 200


def test_serve_without_a_bundle_or_use_case_is_one_clear_error(tmp_path: Path) -> None:
    from .conftest import make_project

    root = make_project(tmp_path, "house-prices", remote=False)
    res = mlopsctl(root, "serve", "house-prices")
    assert res.returncode == 1
    assert "no deployment bundle for 'house-prices'" in res.stderr
    assert "deploy.target: rest" in res.stderr
    res = mlopsctl(root, "serve", "house-price")
    assert res.returncode == 1
    assert "no use case 'house-price'" in res.stderr and "house-prices" in res.stderr
