"""The GitHub workflows and the composite action: valid against GitHub's schemas, and the
reusable workflows run exactly the action's shell steps."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
ACTION = ROOT / "action.yml"
REUSABLE = {
    "plan": ROOT / ".github" / "workflows" / "mlopsctl-plan.yml",
    "apply": ROOT / ".github" / "workflows" / "mlopsctl-apply.yml",
}
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text("utf-8"))
    if True in doc:  # PyYAML reads the key `on` as the boolean True
        doc["on"] = doc.pop(True)
    return doc


def _job(kind: str) -> dict[str, Any]:
    (job,) = _load(REUSABLE[kind])["jobs"].values()
    return job  # type: ignore[no-any-return]


def _action_steps() -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in _load(ACTION)["runs"]["steps"] if "id" in s}


def _check(schema: str, path: Path) -> None:
    if not CHECK_JSONSCHEMA.exists():
        pytest.skip(f"check-jsonschema is not installed next to {sys.executable}")
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_there_are_workflows() -> None:
    assert (ROOT / ".github" / "workflows" / "ci.yml") in WORKFLOWS
    assert set(REUSABLE.values()) <= set(WORKFLOWS)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_the_github_schema(workflow: Path) -> None:
    _check("vendor.github-workflows", workflow)


def test_the_action_matches_the_github_schema() -> None:
    _check("vendor.github-actions", ACTION)


@pytest.mark.parametrize("kind", sorted(REUSABLE))
def test_reusable_workflows_are_called_only(kind: str) -> None:
    assert list(_load(REUSABLE[kind])["on"]) == ["workflow_call"]


@pytest.mark.parametrize("kind", sorted(REUSABLE))
def test_reusable_workflows_run_the_actions_scripts(kind: str) -> None:
    """One shell logic: each `run:` step of a reusable workflow is the action's step of that id."""
    action = _action_steps()
    runs = [s for s in _job(kind)["steps"] if "run" in s]
    assert runs
    for step in runs:
        twin = action[step["id"]]
        assert step["run"] == twin["run"], step["id"]
        assert set(step.get("env") or {}) == set(twin.get("env") or {}), step["id"]
        assert step.get("working-directory") == twin.get("working-directory"), step["id"]


@pytest.mark.parametrize("kind", sorted(REUSABLE))
def test_the_workflows_run_the_actions_steps_for_their_command(kind: str) -> None:
    other = ({"plan", "apply"} - {kind}).pop()
    expected = [
        s["id"]
        for s in _load(ACTION)["runs"]["steps"]
        if "run" in s
        and s["id"] != "check"
        and f"inputs.command == '{other}'" not in s.get("if", "")
    ]
    assert [s["id"] for s in _job(kind)["steps"] if "run" in s] == expected


def _scripts() -> list[Any]:
    named = [(f"action:{s['id']}", s["run"]) for s in _load(ACTION)["runs"]["steps"] if "run" in s]
    for kind in REUSABLE:
        named += [(f"{kind}:{s['id']}", s["run"]) for s in _job(kind)["steps"] if "run" in s]
    return [pytest.param(name, script, id=name) for name, script in named]


@pytest.mark.parametrize(("name", "script"), _scripts())
def test_scripts_take_values_from_env_and_parse(name: str, script: str) -> None:
    # `${{ }}` inside a script is pasted in before bash reads it: script injection by a branch
    # name or an input. Every value reaches the scripts through `env:` instead.
    assert "${{" not in script, name
    proc = subprocess.run(
        ["bash", "-n", "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, f"{name}: {proc.stderr}"


def test_the_plan_job_may_comment_and_the_apply_job_may_push() -> None:
    plan, apply = _job("plan"), _job("apply")
    assert plan["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert apply["permissions"] == {"contents": "write"}
    # two applies never race; a running one is never cancelled half-way
    assert apply["concurrency"]["cancel-in-progress"] is False
    assert "mlopsctl-apply" in apply["concurrency"]["group"]
    checkout = apply["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"]["fetch-depth"] == 0  # tags: the next version follows the newest
    assert checkout["with"]["ref"] == "${{ github.ref }}"  # the tip, after the runs it replaced


def test_apply_commits_as_the_bot_and_skips_its_own_commits() -> None:
    inputs = _load(ACTION)["inputs"]
    assert inputs["git-user-name"]["default"] == "github-actions[bot]"
    assert inputs["git-user-email"]["default"] == (
        "41898282+github-actions[bot]@users.noreply.github.com"
    )
    steps = _action_steps()
    assert "Mlopsctl-Plan: " in steps["guard"]["run"]
    assert "--follow-tags" in steps["push"]["run"]
    for sid in ("identity", "pull", "apply", "push"):
        assert "steps.guard.outputs.skip != 'true'" in steps[sid]["if"], sid


def _doc_examples() -> list[Any]:
    text = (ROOT / "docs" / "ci.md").read_text("utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    return [pytest.param(b, id=f"docs-ci-{i}") for i, b in enumerate(blocks)]


@pytest.mark.parametrize("example", _doc_examples())
def test_the_documented_user_workflows_are_valid(example: str, tmp_path: Path) -> None:
    doc = yaml.safe_load(example)
    uses = [
        j.get("uses") or s.get("uses", "")
        for j in doc["jobs"].values()
        for s in (j.get("steps") or [{}])
    ]
    assert any("mlopsctl" in u for u in uses)  # it wires mlopsctl's workflow or action in
    path = tmp_path / "workflow.yml"
    path.write_text(example, "utf-8")
    _check("vendor.github-workflows", path)
