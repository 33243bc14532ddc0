"""mlopsctl's PSI against Evidently 0.7's on the same data (scripts/compare_evidently.py).

Evidently needs pandas < 3, so it lives in its own virtualenv; without one this test is
skipped (set EVIDENTLY_PYTHON, or create /tmp/ev-venv as the script's docstring says).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
EVIDENTLY_PYTHON = os.environ.get("EVIDENTLY_PYTHON", "/tmp/ev-venv/bin/python")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "compare_evidently", ROOT / "scripts" / "compare_evidently.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.skipif(
    not Path(EVIDENTLY_PYTHON).exists(),
    reason=f"no Evidently venv at {EVIDENTLY_PYTHON}: python3 -m venv /tmp/ev-venv && "
    '/tmp/ev-venv/bin/pip install "evidently>=0.7,<0.8" "pandas<3"',
)
def test_psi_agrees_with_evidently_on_the_same_bins_and_verdicts() -> None:
    records = _script().compare(EVIDENTLY_PYTHON)
    assert {r["scenario"] for r in records} == {"same", "drifted"}
    assert len(records) == 10
    for r in records:
        # the same formula and empty-bin rule on the same bins: the same number
        assert r["same_bins"] == pytest.approx(r["evidently"], rel=1e-9, abs=1e-12), r
        # mlopsctl's own (decile) bins: other numbers, the same verdicts
        assert r["mlopsctl_drifted"] == r["evidently_drifted"], r
    drifted = {
        r["column"] for r in records if r["scenario"] == "drifted" and r["evidently_drifted"]
    }
    assert drifted == {"income", "age", "contract"}
    assert not any(r["evidently_drifted"] for r in records if r["scenario"] == "same")
