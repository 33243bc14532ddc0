"""What plan shows a reader, through the CLI: each use case once, with its stages under it."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., "subprocess.CompletedProcess[str]"]
ROOT = Path(__file__).resolve().parents[2]
CUSTOM_STAGE = """
stages:
  - name: extract
    cmd: python -c "print('id,x')" > data/extra.csv
    outs: [data/extra.csv]
    before: validate
"""


@pytest.fixture
def two_usecases(git_repo: Path, cli: Cli) -> Path:
    """house-prices and breast-cancer (with a custom stage) in one repository, never applied."""
    init = cli("-C", git_repo, "init", "--example", "house-prices")
    assert init.returncode == 0, init.stdout + init.stderr
    usecase = git_repo / "usecases" / "breast-cancer.yaml"
    shutil.copyfile(ROOT / "examples/breast-cancer/usecases/breast-cancer.yaml", usecase)
    with usecase.open("a", encoding="utf-8") as fh:
        fh.write(CUSTOM_STAGE)
    return git_repo


def _plan_order(root: Path, cli: Cli) -> list[tuple[str, str]]:
    proc = cli("-C", root, "plan", "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [(s["usecase"], s["id"].split("/", 1)[1]) for s in json.loads(proc.stdout)["stages"]]


def _grouped(order: list[tuple[str, str]]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for usecase, stage in order:
        groups.setdefault(usecase, []).append(stage)
    return groups


def test_plan_text_shows_each_use_case_once_with_its_stages(two_usecases: Path, cli: Cli) -> None:
    order = _plan_order(two_usecases, cli)
    usecases = [uc for uc, _stage in order]
    # the premise: the plan's (topological) order interleaves the two use cases
    assert usecases != sorted(usecases, key=usecases.index)

    proc = cli("-C", two_usecases, "plan")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "Plan: 13 to run, 0 up to date, 0 to remove."
    headers = [line for line in lines[:-1] if not line.startswith(" ")]
    assert headers == ["house-prices", "breast-cancer"] or headers == [
        "breast-cancer",
        "house-prices",
    ]
    shown: dict[str, list[str]] = {}
    for line in lines[:-1]:
        if not line.startswith(" "):
            current = shown.setdefault(line, [])
        else:
            symbol, stage, *_why = line.split()
            assert symbol == "+"
            current.append(stage)
    assert shown == _grouped(order)  # every stage under its use case, in the plan's order
    assert shown["breast-cancer"][:3] == ["ingest", "extract", "validate"]


def test_plan_markdown_shows_each_use_case_once_with_its_stages(
    two_usecases: Path, cli: Cli
) -> None:
    order = _plan_order(two_usecases, cli)
    proc = cli("-C", two_usecases, "plan", "--format", "markdown")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert table[:2] == ["| use case | stage | action | why |", "| --- | --- | --- | --- |"]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    named = [row[0] for row in rows if row[0]]
    assert sorted(named) == ["breast-cancer", "house-prices"]  # each use case once
    assert rows[0][0], "the first row names its use case"
    shown: dict[str, list[str]] = {}
    usecase = ""
    for name, stage, action, _why in rows:
        usecase = name or usecase  # a blank cell: the use case of the rows above
        shown.setdefault(usecase, []).append(stage.strip("`"))
        assert action == "+ run"
    assert shown == _grouped(order)
