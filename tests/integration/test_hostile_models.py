"""A hostile model file in a real applied repository: evaluate refuses it and runs nothing."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import mlopsctl

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_modelio import poisoned  # noqa: E402  (the same payload as the unit tests)


def test_run_stage_evaluate_refuses_a_poisoned_model(applied: Callable[[str], Path]) -> None:
    root = applied("breast-cancer")
    marker = root.parent / "pwned"
    model = root / "artifacts" / "breast-cancer" / "model.skops"
    model.unlink()  # DVC links it to its cache: replace the link, never write through it
    model.write_bytes(poisoned(marker, ("numpy.testing._private.utils", "runstring")))

    proc = mlopsctl(root, "run-stage", "breast-cancer/evaluate")  # as `dvc repro` runs it

    assert proc.returncode == 1
    assert not marker.exists()
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "refusing to load" in lines[0]
    assert "numpy.testing._private.utils.runstring" in lines[0]
