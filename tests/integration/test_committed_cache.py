"""mlopsctl's local caches (.mlopsctl/) are never trusted from a commit.

They decide what plan and apply believe without re-reading: the parsed copy of dvc.lock, and the
run-cache, which makes apply restore outputs instead of running a stage. A pull request could
commit made-up ones (``git add -f``) beside a real dvc.lock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import yaml

from .conftest import git, mlopsctl

UC = "breast-cancer"


def _forge_lock_copy(root: Path) -> None:
    """A copy of dvc.lock's data under its md5, with train's command changed."""
    raw = (root / "dvc.lock").read_bytes()
    data = yaml.safe_load(raw)
    data["stages"][f"{UC}_train"]["cmd"] = "forged"
    forged = {"md5": hashlib.md5(raw).hexdigest(), "data": data}
    (root / ".mlopsctl").mkdir(exist_ok=True)
    (root / ".mlopsctl" / "lock.json").write_text(json.dumps(forged))


def test_a_copy_of_dvc_lock_not_made_from_this_file_is_not_used(
    applied: Callable[[str], Path],
) -> None:
    root = applied(UC)
    assert mlopsctl(root, "plan", "--detailed-exitcode").returncode == 0  # nothing to do
    _forge_lock_copy(root)  # the same bytes' md5, but not made from this file
    proc = mlopsctl(root, "plan", "--detailed-exitcode")
    # the old code read the copy: "train: command changed" and exit 2
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "command" not in proc.stdout
    # plan replaced the copy with one bound to this very file, which the next plan uses
    copy = json.loads((root / ".mlopsctl" / "lock.json").read_text())
    assert copy["data"]["stages"][f"{UC}_train"]["cmd"] != "forged" and copy["stat"]


def test_committed_local_state_is_refused_by_plan_and_apply(
    applied: Callable[[str], Path],
) -> None:
    root = applied(UC)
    lock = (root / "dvc.lock").read_bytes()
    _forge_lock_copy(root)
    run = root / ".mlopsctl" / "runs" / "ab" / ("ab" + "0" * 62 + ".json")
    run.parent.mkdir(parents=True, exist_ok=True)
    run.write_text(json.dumps({"stage": f"{UC}/train", "outs": {}}))
    git(root, "add", "-f", ".mlopsctl/lock.json", str(run.relative_to(root)))
    git(root, "commit", "-q", "-m", "a pull request that commits caches")
    head = git(root, "rev-parse", "HEAD")
    for args in (["plan"], ["apply"], ["status"]):
        proc = mlopsctl(root, *args)
        assert proc.returncode == 1, (args, proc.stdout + proc.stderr)
        err = proc.stderr.strip()
        assert "git tracks mlopsctl's local state under .mlopsctl/" in err, err
        assert ".mlopsctl/lock.json" in err and "git rm -r --cached .mlopsctl" in err, err
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert (root / "dvc.lock").read_bytes() == lock
    assert git(root, "rev-parse", "HEAD") == head
    # untracked again (the files stay, as local caches): plan works, and ignores the forgery
    git(root, "rm", "-q", "-r", "--cached", ".mlopsctl")
    git(root, "commit", "-q", "-m", "untrack .mlopsctl/")
    proc = mlopsctl(root, "plan", "--detailed-exitcode")
    assert proc.returncode == 0, proc.stdout + proc.stderr
