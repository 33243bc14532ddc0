"""The SPEC.md section 2 example (tests/fixtures/spec_example) validates and plans from the repo
alone, wherever the tests run.

Comparing the fixture with SPEC.md itself is an extra check that needs the product contract next
to the repository (tests/unit/test_schemas.py, skipped without it); applying the fixture trains
a model and lives with the slow pipelines (tests/integration/test_pipelines.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

Cli = Callable[..., "subprocess.CompletedProcess[str]"]
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "spec_example"
BUILT_IN = ("ingest", "validate", "split", "train", "evaluate", "gate")


def _project(git_repo: Path) -> Path:
    """The fixture in a fresh git + DVC repository (no mlopsctl init: it would add an example)."""
    shutil.copytree(FIXTURE, git_repo, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__py*"))
    from dvc.repo import Repo  # the tests may import DVC; the CLI under test must not

    Repo.init(str(git_repo)).close()
    return git_repo


def test_spec_example_validates_and_plans(git_repo: Path, cli: Cli) -> None:
    root = _project(git_repo)

    validate = cli("-C", root, "validate")
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert validate.stdout.startswith("ok: 1 use case valid (churn)")

    proc = cli("-C", root, "plan", "--format", "json", "--detailed-exitcode")
    assert proc.returncode == 2, proc.stdout + proc.stderr  # everything to run
    stages = json.loads(proc.stdout)["stages"]
    ids = [s["id"] for s in stages]
    assert {f"churn/{s}" for s in (*BUILT_IN, "featurize")} <= set(ids)
    assert ids.index("churn/featurize") < ids.index("churn/ingest")  # `before: ingest`
    assert all(s["action"] == "run" for s in stages)
    assert all(s["reasons"][0]["kind"] == "new-usecase" for s in stages)

    text = cli("-C", root, "plan")
    assert text.returncode == 0, text.stdout + text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "churn"
    assert lines[1].split()[:2] == ["+", "featurize"]
    assert lines[-1] == f"Plan: {len(ids)} to run, 0 up to date, 0 to remove."
    assert not (root / "dvc.yaml").exists()  # plan never writes
