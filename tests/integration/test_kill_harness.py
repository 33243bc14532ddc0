"""Crash consistency: SIGKILL apply at every named point, then prove the next apply heals it.

Each trial copies an applied example, makes a change (a param that retrains, a gate bound, or a
data row), and runs ``apply`` with ``MLOPSCTL_KILL_AT=POINT:N`` (mlopsctl/fault.py), which
SIGKILLs the process there, or kills the whole process group after a seeded random delay. Then
a plain ``apply`` must complete, and the repository must be consistent:

* dvc.lock parses and matches the files on disk (``dvc status`` clean, ``plan`` has nothing);
* every DVC cache object named by dvc.lock or a .dvc file has the content its name says;
* git holds whole apply commits only: a clean work tree, the committed dvc.lock is the one on
  disk, and the committed reports are exactly the outputs dvc.lock records;
* the work of the killed apply is named in a commit (ran, or recovered);
* the remote holds everything (``dvc status -c``), and no journal, pending message or staging
  directory is left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ENV, dvc, edit, git, mlopsctl

pytestmark = pytest.mark.slow

#: seeds per kill point: 1 in CI (every point, ~9 trials, keeps CI under its 15 minutes);
#: MLOPSCTL_KILL_SEEDS=3 is the soak run quoted in closing notes (27 trials)
SEEDS = int(os.environ.get("MLOPSCTL_KILL_SEEDS", "1"))

#: (point, example, change): every named point of the apply path, SEEDS seeds each
NAMED = [
    ("stage-running", "breast-cancer", "param"),
    ("journaled", "breast-cancer", "param"),
    ("lock-write", "breast-cancer", "param"),
    ("recorded", "breast-cancer", "gate"),
    ("push", "breast-cancer", "param"),
    ("commit", "breast-cancer", "gate"),
    ("tag", "breast-cancer", "param"),
    ("source-write", "house-prices", "data"),
]
TRIALS = [(p, ex, ch, seed) for (p, ex, ch) in NAMED for seed in range(SEEDS)]
RANDOM_TRIALS = [("random-time", "breast-cancer", "param", seed) for seed in range(SEEDS)]


def _change(root: Path, example: str, change: str, rng: random.Random) -> str:
    uc = root / f"usecases/{example}.yaml"
    if change == "param":
        value = rng.choice(["0.3", "0.5", "2.0", "4.0"])
        edit(uc, "C: 1.0", f"C: {value}")
        return "train"
    if change == "gate":
        edit(uc, "roc_auc: {min: 0.95}", f"roc_auc: {{min: 0.9{rng.randint(0, 4)}}}")
        return "gate"
    row = "10001,132.9,5,16,11.38,outskirts,E,yes,325.1"
    edit(root / "data/houses.csv", row, row.replace("325.1", f"{rng.randint(200, 400)}.5"))
    return "ingest"


def _killed_apply(root: Path, point: str, rng: random.Random) -> int:
    env = dict(ENV)
    if point == "random-time":
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlopsctl", "apply", "--jobs", "2"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the kill takes the workers too
        )
        time.sleep(rng.uniform(0.5, 6.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=120)
    nth = rng.randint(1, 3) if point in ("stage-running", "journaled") else 1
    env["MLOPSCTL_KILL_AT"] = f"{point}:{nth}"
    proc = subprocess.run(
        [sys.executable, "-m", "mlopsctl", "apply", "--jobs", "1"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _check_consistent(root: Path, base: str, worked_on: str) -> None:
    # dvc.lock parses and matches the workspace
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert isinstance(lock, dict) and lock.get("stages"), "dvc.lock lost its stages"
    assert dvc(root, "status", "--json").stdout.strip() in ("{}", ""), dvc(root, "status").stdout
    assert mlopsctl(root, "plan", "--detailed-exitcode").returncode == 0
    # the cache holds no corrupt object
    cache = root / ".dvc/cache/files/md5"
    for obj in cache.glob("*/*"):
        if obj.name.endswith(".dir"):
            continue
        assert _md5(obj) == obj.parent.name + obj.name, f"corrupt cache object {obj}"
    # git: whole commits only; committed files are what dvc.lock records
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "show", "HEAD:dvc.lock") == (root / "dvc.lock").read_text()
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            path = out["path"]
            if path.startswith("reports/") and path.endswith(".json"):
                committed = git(root, "show", f"HEAD:{path}").encode()
                assert hashlib.md5(committed).hexdigest() == out["md5"], path
    log = git(root, "log", "--format=%B", f"{base}..HEAD")
    body = [ln for ln in log.splitlines() if ln and not ln.startswith("Mlopsctl-")]
    pattern = re.compile(rf"(ran|recovered|restored): [^;]*\b{worked_on}\b")
    assert any(pattern.search(ln) for ln in body), log
    for subject in git(root, "log", "--format=%s", f"{base}..HEAD").splitlines():
        assert subject.startswith("mlopsctl apply: "), subject
    # the remote holds everything
    assert dvc(root, "status", "-c", "--json").stdout.strip() in ("{}", "")
    # version tags: each one an apply commit names is on that commit; the latest version of a
    # model whose gate passed holds that model; no apply tagged twice
    _check_tags(root, base, lock)
    # nothing left behind
    leftovers = [".mlopsctl/journal.jsonl", ".mlopsctl/pending-commit.txt"]
    leftovers.append(".mlopsctl/pending-tags.json")
    assert not [p for p in leftovers if (root / p).exists()]
    tmp = root / ".mlopsctl/tmp"
    assert not tmp.exists() or not any(tmp.iterdir())


def _check_tags(root: Path, base: str, lock: dict[str, Any]) -> None:
    log = git(root, "log", "--format=%H%x00%B%x1e", f"{base}..HEAD")
    for record in log.split("\x1e"):
        sha, _, body = record.strip("\n").partition("\x00")
        for line in body.splitlines():
            if line.startswith(("Mlopsctl-Version: ", "Mlopsctl-Deploy: ")):
                tag = line.split(": ", 1)[1].split()[0]
                if "@" in tag:  # a version tag is on the apply commit itself
                    assert git(root, "rev-parse", f"{tag}^{{commit}}").strip() == sha, tag
    for name in {k.rsplit("_", 1)[0] for k in lock["stages"]}:
        tags = git(root, "tag", "--list", f"{name}@v*", "--sort=v:refname").split()
        assert tags and len(tags) <= 2, tags  # the template's v1.0.0, at most one more
        gate = json.loads((root / f"reports/{name}/gate.json").read_text("utf-8"))
        if gate.get("passed"):
            model = f"artifacts/{name}/model.skops"
            outs = {o["path"]: o["md5"] for o in lock["stages"][f"{name}_train"]["outs"]}
            message = git(root, "tag", "-l", "--format=%(contents)", tags[-1])
            assert f"Model: {model} md5:{outs[model]}" in message, message


@pytest.mark.parametrize(("point", "example", "change", "seed"), TRIALS + RANDOM_TRIALS)
def test_kill_then_apply_leaves_a_consistent_ledger(
    applied: Callable[[str], Path], point: str, example: str, change: str, seed: int
) -> None:
    rng = random.Random(f"{point}-{seed}")
    root = applied(example)
    worked_on = _change(root, example, change, rng)
    git(root, "commit", "-q", "--allow-empty", "-am", f"trial change ({change})")
    base = git(root, "rev-parse", "HEAD").strip()

    code = _killed_apply(root, point, rng)
    if point != "random-time":
        assert code == -signal.SIGKILL, f"apply was not killed at {point} (exit {code})"

    heal = mlopsctl(root, "apply")
    assert heal.returncode == 0, heal.stdout + heal.stderr
    _check_consistent(root, base, worked_on)
    summary = json.dumps({"point": point, "seed": seed, "exit": code})
    print(summary)
