"""Spec keys this version does not act on yet are warned about by validate and plan; keys whose
feature has landed (deploy.target, monitoring, infra.executor: dask) are not."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

Cli = Callable[..., "subprocess.CompletedProcess[str]"]

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "spec_example"


def test_validate_and_plan_warn_about_keys_not_acted_on(tmp_path: Path, cli: Cli) -> None:
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
        assert any("infra.remote: per-use-case remotes" in w for w in warnings), p.stderr
        assert all("usecases/churn.yaml" in w for w in warnings)


def test_deploy_and_monitoring_are_no_longer_warned_about(tmp_path: Path, cli: Cli) -> None:
    root = tmp_path / "project"
    shutil.copytree(FIXTURE, root)
    text = (root / "usecases" / "churn.yaml").read_text("utf-8")
    assert "target: rest" in text and "\nmonitoring:" in text  # the fixture sets both
    for args in (["validate"], ["plan"]):
        p = cli("-C", root, *args)
        assert p.returncode == 0, p.stderr
        assert "deploy.target" not in p.stderr and "monitoring:" not in p.stderr, p.stderr
