"""`mlopsctl status` says what is deployed and what a running server serves (issue 7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import git, mlopsctl
from .test_deploy import manifest, rest_project, set_deploy, set_model
from .test_serve import Server, free_port

pytestmark = pytest.mark.slow


def deployment(root: Path) -> dict[str, Any]:
    st = json.loads(mlopsctl(root, "status", "--json", check=True).stdout)
    (entry,) = [s for s in st if s["usecase"] == "house-prices"]
    return dict(entry)


def test_status_in_sync_out_of_sync_not_running_and_gate_failed(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    port = free_port()
    # the fast model, applied; on this test's own port, which re-runs deploy alone
    root = rest_project(tmp_path_factory, tmp_path)
    set_deploy(root, f"  target: rest\n  rest: {{host: 127.0.0.1, port: {port}}}\n")
    git(root, "commit", "-q", "-am", "deploy on a free port")
    mlopsctl(root, "apply", check=True)
    v1 = manifest(root)["version"]
    st = deployment(root)
    assert st["deployment"] == f"not running (deployed {v1})"
    assert st["deployed_version"] == v1 and st["serving_version"] is None

    server = Server(root, port=port, reload_interval=3600)  # never reloads by itself here
    try:
        st = deployment(root)
        assert st["deployment"] == "in sync" and st["serving_version"] == v1
        assert "deploy: in sync" in mlopsctl(root, "status").stdout

        set_model(root, alpha=25.0)  # retrain: a new version is deployed, not yet served
        git(root, "commit", "-q", "-am", "alpha 25")
        mlopsctl(root, "apply", check=True)
        v2 = manifest(root)["version"]
        assert v2 != v1
        st = deployment(root)
        assert st["deployment"] == f"out of sync: serving {v1}, deployed {v2}"
    finally:
        server.stop()

    server = Server(root, port=port)
    try:
        assert deployment(root)["deployment"] == "in sync"
        set_model(root, alpha=60.0, gate="r2: {min: 0.9999}")  # a model that fails the gate
        git(root, "commit", "-q", "-am", "a gate it cannot pass")
        assert mlopsctl(root, "apply").returncode == 1
        st = deployment(root)
        assert st["gate"] == "failed"
        assert st["deployment"] == f"gate failed, serving {v2}"
        assert st["serving_version"] == v2
    finally:
        server.stop()
