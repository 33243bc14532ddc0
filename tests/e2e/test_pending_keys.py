"""Every spec key is acted on: validate and plan warn about none of them (deploy.target,
monitoring, infra.executor: dask, infra.remote), as they did before each feature landed."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

Cli = Callable[..., "subprocess.CompletedProcess[str]"]

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "spec_example"


def test_dask_and_a_use_cases_remote_are_no_longer_warned_about(tmp_path: Path, cli: Cli) -> None:
    root = tmp_path / "project"
    shutil.copytree(FIXTURE, root)
    churn = root / "usecases" / "churn.yaml"
    text = churn.read_text("utf-8")
    churn.write_text(
        text.replace("  executor: local ", "  executor: dask  ", 1).replace(
            '  # dask: {scheduler: "tcp://scheduler:8786"}',
            '  dask: {scheduler: "tcp://scheduler:8786"}',
            1,
        ),
        "utf-8",
    )
    for args in (["validate"], ["plan"]):
        p = cli("-C", root, *args)
        assert p.returncode == 0, p.stderr
        warnings = [ln for ln in p.stderr.splitlines() if ln.startswith("warning: ")]
        assert not any("infra.executor" in w for w in warnings), p.stderr  # dask has landed
        assert not any("infra.remote" in w for w in warnings), p.stderr  # the project's remote


def test_deploy_and_monitoring_are_no_longer_warned_about(tmp_path: Path, cli: Cli) -> None:
    root = tmp_path / "project"
    shutil.copytree(FIXTURE, root)
    text = (root / "usecases" / "churn.yaml").read_text("utf-8")
    assert "target: rest" in text and "\nmonitoring:" in text  # the fixture sets both
    for args in (["validate"], ["plan"]):
        p = cli("-C", root, *args)
        assert p.returncode == 0, p.stderr
        assert "deploy.target" not in p.stderr and "monitoring:" not in p.stderr, p.stderr
