"""Spec keys this version does not act on yet are warned about by validate and plan."""

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
    for args in (["validate"], ["plan"]):
        p = cli("-C", root, *args)
        assert p.returncode == 0, p.stderr
        warnings = [ln for ln in p.stderr.splitlines() if ln.startswith("warning: ")]
        assert not any("deploy" in w for w in warnings), p.stderr  # deploy has landed
        assert any("monitoring: not acted on yet" in w for w in warnings), p.stderr
        assert all("usecases/churn.yaml" in w for w in warnings)
