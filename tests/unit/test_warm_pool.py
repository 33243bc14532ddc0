"""The local pool's workers start with the built-in stages' libraries loaded when asked to.

Imported once by the fork server and shared, instead of once per worker on every apply. The fork
server is one per process and keeps its first preload, so each case runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlopsctl.execute.executors import WARM_MODULES, warm_pool

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


def _python(script: str, env: dict[str, str] | None = None) -> str:
    """Run *script* in a fresh interpreter (a fresh fork server); its output, exit 0 checked."""
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("warm", [True, False])
def test_workers_start_warm_only_when_asked(warm: bool) -> None:
    loaded = json.loads(_python(SCRIPT.format(names=NAMES, warm=warm)))
    assert loaded == (sorted(NAMES) if warm else [])


def test_every_warm_module_exists() -> None:
    """The fork server skips a module it cannot import: a renamed one would go unnoticed."""
    import importlib.util

    assert [m for m in WARM_MODULES if importlib.util.find_spec(m) is None] == []


BROKEN = """
from mlopsctl.execute.executors import LocalExecutor

pool = LocalExecutor(2, warm=True)
try:
    print(pool.submit(eval, "('pandas' in __import__('sys').modules, 6 * 7)").result(timeout=120))
finally:
    pool.shutdown()
"""


def test_a_library_that_fails_to_import_does_not_stop_the_pool(tmp_path: Path) -> None:
    """Not an ImportError: the fork server's own preload would die on it, and no worker start."""
    (tmp_path / "skops").mkdir()
    (tmp_path / "skops" / "__init__.py").write_text("raise RuntimeError('broken install')\n")
    # on PYTHONPATH, so that the fork server (a fresh interpreter) sees the broken skops too
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    assert _python(BROKEN, env).strip() == "(True, 42)"  # the rest was preloaded, the job ran


def test_the_pool_is_warmed_for_several_use_cases_only() -> None:
    """One use case's built-in stages are a chain one worker runs: it imports as it goes."""
    assert warm_pool([("churn-a", "train"), ("churn-b", "ingest")]) is True
    assert warm_pool([("churn-a", "train"), ("churn-a", "evaluate")]) is False
    assert warm_pool([("churn-a", "train"), ("churn-b", "custom")]) is False  # b: commands only
    assert warm_pool([]) is False


@pytest.mark.parametrize("warm", [True, False])
def test_the_fork_server_is_set_to_leave_at_once(warm: bool) -> None:
    """Its workers are its forks: they see what the server imported before forking them."""
    names = ("mlopsctl.execute.server",)
    assert json.loads(_python(SCRIPT.format(names=names, warm=warm))) == list(names)


LEAVES = """
import mlopsctl.execute.server

class Heavy:
    def __del__(self):
        print("torn down", flush=True)

heavy = Heavy()
print("done", flush=True)
"""


def test_a_process_with_the_server_module_skips_the_interpreter_teardown() -> None:
    """What kept `mlopsctl apply | tee` waiting ~0.3 s after apply had ended: the fork server's
    teardown of the stages' libraries, with apply's stdout still open."""
    assert _python(LEAVES.replace("import mlopsctl.execute.server", "")) == "done\ntorn down\n"
    assert _python(LEAVES) == "done\n"
