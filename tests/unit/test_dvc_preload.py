"""apply's background import of DVC (integrations.dvc.preload) never prints a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


#: opened once in the background: what DVC imports on a repository's first opening is loaded
#: then, and record's own opening waits for the preload (it changes the working directory)
OPEN_ONCE = """
import os, sys
from pathlib import Path
from mlopsctl.integrations import dvc
root = Path(sys.argv[1])
assert "scmrepo.git" not in sys.modules
thread = dvc.preload(root)
with dvc.open_repo(root) as repo:
    assert not thread.is_alive(), "open_repo did not wait for the preload"
    assert Path.cwd() == root
    assert {"scmrepo.git", "dvc.utils.strictyaml", "dvc.repo"} <= set(sys.modules)
assert dvc._preloading is None
print("ok")
"""


def test_the_preload_opens_the_repository_once_and_open_repo_waits_for_it(
    git_repo: Path,
) -> None:
    from mlopsctl.integrations import dvc

    dvc.ensure_initialised(git_repo)
    proc = subprocess.run(
        [sys.executable, "-c", OPEN_ONCE, str(git_repo.resolve())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_a_preload_of_a_directory_that_is_no_dvc_repository_stays_quiet(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from mlopsctl.integrations import dvc\n"
        "dvc.preload(Path(sys.argv[1])).join()\n"
        "assert 'dvc.repo' in sys.modules\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert list(tmp_path.iterdir()) == []  # nothing written where there is no repository
