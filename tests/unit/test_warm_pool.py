"""The local pool's workers start with the built-in stages' libraries loaded when asked to.

Imported once by the fork server and shared, instead of once per worker on every apply. The fork
server is one per process and keeps its first preload, so each case runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlopsctl.execute.executors import WARM_MODULES

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import json
from mlopsctl.execute.executors import LocalExecutor

PROBE = "sorted(m for m in {names!r} if m in __import__('sys').modules)"
pool = LocalExecutor(2, warm={warm!r})
try:
    print(json.dumps(pool.submit(eval, PROBE).result(timeout=120)))
finally:
    pool.shutdown()
"""
NAMES = ("pandas", "sklearn", "skops.io", "mlopsctl.stages.train")


@pytest.mark.parametrize("warm", [True, False])
def test_workers_start_warm_only_when_asked(warm: bool) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(names=NAMES, warm=warm)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout)
    assert loaded == (sorted(NAMES) if warm else [])


def test_every_warm_module_exists() -> None:
    """The fork server skips a module it cannot import: a renamed one would go unnoticed."""
    import importlib.util

    assert [m for m in WARM_MODULES if importlib.util.find_spec(m) is None] == []
