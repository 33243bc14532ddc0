"""apply's background import of DVC (integrations.dvc.preload) never prints a traceback."""

from __future__ import annotations

import subprocess
import sys

#: an apply that ends right after its stages started (interrupted, or failed before recording):
#: the interpreter shuts down while the preload thread is still importing DVC
EXIT_DURING_PRELOAD = """
from mlopsctl.integrations import dvc
dvc.preload()
raise SystemExit(3)
"""


def test_an_exit_while_dvc_is_still_being_imported_is_quiet() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_DURING_PRELOAD], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 3
    assert proc.stderr == "", proc.stderr


def test_the_preload_imports_what_record_uses() -> None:
    code = (
        "import sys\n"
        "from mlopsctl.integrations import dvc\n"
        "dvc.preload().join()\n"
        "assert {'dvc.repo', 'dvc.stage.serialize', 'dvc.dependency.param'} <= set(sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
