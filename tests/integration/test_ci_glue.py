"""The reusable CI, run as GitHub Actions would run it: a user repository, a bare git origin, a
file DVC remote and a fake GitHub API on 127.0.0.1.

The jobs are read from action.yml and the reusable workflows; their `run:` steps execute in order
with bash, each with its own `env:`, `if:`, `working-directory` and `GITHUB_OUTPUT`, and a small
evaluator for the `${{ }}` expressions they use. `uses:` steps are the runner's business (a clone
stands in for actions/checkout, this interpreter for actions/setup-python).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ENV, dvc, edit, git, mlopsctl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_github_comment import REPO, FakeGitHub

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
PLAN_WORKFLOW = ROOT / ".github" / "workflows" / "mlopsctl-plan.yml"
APPLY_WORKFLOW = ROOT / ".github" / "workflows" / "mlopsctl-apply.yml"
UC = "usecases/breast-cancer.yaml"
BOT = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
RUNNER_USES = {"actions/checkout", "actions/setup-python"}

# --- a tiny GitHub Actions expression evaluator: the subset our YAML uses -----------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||!|\(|\))"
    r"|(?P<name>[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*))"
)


def evaluate(expr: str, ctx: dict[str, Any]) -> Any:
    """Evaluate *expr* (literals, context paths, ==, !=, !, &&, ||, parentheses)."""
    py, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        assert m and m.end() > pos, f"unsupported expression {expr!r} at {expr[pos:]!r}"
        pos = m.end()
        if m["str"]:
            py.append(repr(m["str"][1:-1].replace("''", "'")))
        elif m["op"]:
            py.append({"&&": " and ", "||": " or ", "!": " not "}.get(m["op"], m["op"]))
        elif m["name"] in ("true", "false", "null"):
            py.append({"true": "True", "false": "False", "null": "None"}[m["name"]])
        else:
            py.append(f"_get({m['name']!r})")

    def _get(path: str) -> Any:
        value: Any = ctx
        for part in path.split("."):
            value = value.get(part, "") if isinstance(value, dict) else ""
        return value

    return eval("".join(py), {"__builtins__": {}, "_get": _get})


def as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def interpolate(text: str, ctx: dict[str, Any]) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: as_text(evaluate(m[1], ctx)), str(text))


# --- the runner ----------------------------------------------------------------------------


@dataclass
class Runner:
    """What a GitHub runner provides to one job: its variables, a temp dir, the fake API."""

    tmp: Path
    github: FakeGitHub
    env: dict[str, str] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)

    def event(self, name: str, ref: str, payload: dict[str, Any], **extra: str) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        event = self.tmp / f"event-{name}.json"
        event.write_text(json.dumps(payload), "utf-8")
        temp = self.tmp / "runner-temp"
        temp.mkdir(exist_ok=True)
        # nothing of the runner this test may itself run on (GitHub Actions) leaks in
        outer = {k: v for k, v in ENV.items() if not k.startswith(("GITHUB_", "RUNNER_", "GH_"))}
        self.env = {
            **outer,
            "PYTHONPATH": str(ROOT),  # `mlopsctl` on PATH runs this checkout
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_API_URL": self.github.url,
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_EVENT_NAME": name,
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_REF": ref,
            "GITHUB_REF_NAME": ref.removeprefix("refs/heads/").removeprefix("refs/"),
            "GITHUB_ACTOR": "alice",
            "RUNNER_TEMP": str(temp),
            "NO_PROXY": "127.0.0.1,localhost",
            **extra,
        }
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            self.env.pop(var, None)

    def context(self, inputs: dict[str, Any], declared: dict[str, Any]) -> dict[str, Any]:
        github = {
            "token": self.github.token,
            "ref": self.env["GITHUB_REF"],
            "ref_name": self.env["GITHUB_REF_NAME"],
            "actor": self.env["GITHUB_ACTOR"],
            "repository": REPO,
            "event_name": self.env["GITHUB_EVENT_NAME"],
        }
        ctx: dict[str, Any] = {"github": github, "secrets": {}, "steps": {}, "inputs": {}}
        for name, spec in declared.items():
            default = (spec or {}).get("default", "")
            ctx["inputs"][name] = inputs.get(name, interpolate(default, ctx))
            if (spec or {}).get("type") == "boolean" and name not in inputs:
                ctx["inputs"][name] = str(default).lower() == "true"
        return ctx

    def run(
        self, steps: list[dict[str, Any]], ctx: dict[str, Any], workspace: Path
    ) -> dict[str, dict[str, str]]:
        """Run the steps in order, as the runner does; fail at the first failing step."""
        for i, step in enumerate(steps):
            if "uses" in step:
                assert step["uses"].split("@")[0] in RUNNER_USES, step["uses"]
                continue
            if "if" in step and not evaluate(str(step["if"]).strip("${} "), ctx):
                continue
            sid = step.get("id", f"step{i}")
            script = step["run"]
            assert "${{" not in script, f"{sid}: expressions go through env:, not into scripts"
            output = self.tmp / "runner-temp" / f"output-{sid}-{len(self.ran)}"
            output.write_text("")
            env = {**self.env, "GITHUB_WORKSPACE": str(workspace), "GITHUB_OUTPUT": str(output)}
            env.update({k: interpolate(v, ctx) for k, v in (step.get("env") or {}).items()})
            cwd = workspace / interpolate(step.get("working-directory", "."), ctx)
            proc = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
            self.ran.append(sid)
            assert "Traceback" not in proc.stderr, proc.stderr
            assert proc.returncode == 0, (
                f"step {sid} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
            outputs = dict(
                line.split("=", 1) for line in output.read_text().splitlines() if "=" in line
            )
            ctx["steps"][sid] = {"outputs": outputs}
        return ctx["steps"]  # type: ignore[no-any-return]


def action_job(
    runner: Runner, inputs: dict[str, Any], workspace: Path, only: set[str] | None = None
) -> dict[str, Any]:
    """Run the action's steps (those in *only*, when given)."""
    doc = yaml.safe_load(ACTION.read_text("utf-8"))
    ctx = runner.context(inputs, doc["inputs"])
    steps = [s for s in doc["runs"]["steps"] if only is None or s.get("id") in only]
    return runner.run(steps, ctx, workspace)


def workflow_job(
    runner: Runner, workflow: Path, inputs: dict[str, Any], workspace: Path
) -> dict[str, Any]:
    doc = yaml.safe_load(workflow.read_text("utf-8"))
    call = doc[True]["workflow_call"]  # PyYAML reads the key `on` as True
    ctx = runner.context(inputs, call["inputs"])
    (job,) = doc["jobs"].values()
    return runner.run(job["steps"], ctx, workspace)


def checkout(origin: Path, branch: str, workspace: Path) -> Path:
    """What actions/checkout with fetch-depth 0 leaves: a clone on the branch, with its tags."""
    subprocess.run(
        ["git", "clone", "-q", "-b", branch, str(origin), str(workspace)],
        check=True,
        capture_output=True,
        env=ENV,
    )
    return workspace


def remote_tags(origin: Path) -> dict[str, str]:
    out = git(origin, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/tags")
    return dict(line.split() for line in out.splitlines())


# --- the user's repository -----------------------------------------------------------------


@pytest.fixture
def github() -> Any:
    fake = FakeGitHub()
    fake.start()
    fake.comments[(REPO, 7)] = []
    try:
        yield fake
    finally:
        fake.stop()


def user_repository(tmp: Path) -> tuple[Path, Path]:
    """A developer's clone (breast-cancer example, file DVC remote) and its bare origin."""
    origin = tmp / "origin.git"
    git(tmp, "init", "-q", "--bare", "-b", "main", str(origin))
    dev = tmp / "dev"
    dev.mkdir()
    git(dev, "init", "-q", "-b", "main")
    git(dev, "config", "user.name", "Alice")
    git(dev, "config", "user.email", "alice@example.com")
    mlopsctl(
        dev, "init", "--example", "breast-cancer", "--remote", str(tmp / "dvc-remote"), check=True
    )
    git(dev, "add", "-A")
    git(dev, "commit", "-q", "-m", "start a project")
    git(dev, "remote", "add", "origin", str(origin))
    git(dev, "push", "-q", "origin", "main")
    return dev, origin


def applied_user_repository(tmp: Path, template: Path) -> tuple[Path, Path]:
    """A developer's clone and its bare origin, as `user_repository` leaves them but with the
    example applied and pushed (commit, version tag, DVC remote): a private copy of *template*
    (the session's applied example), so that a CI apply re-runs only what a change touches."""
    origin = tmp / "origin.git"
    git(tmp, "init", "-q", "--bare", "-b", "main", str(origin))
    dev = tmp / "dev"
    shutil.copytree(template / "repo", dev, symlinks=True)
    shutil.copytree(template / "remote", tmp / "dvc-remote")
    git(dev, "config", "user.name", "Alice")
    git(dev, "config", "user.email", "alice@example.com")
    dvc(dev, "remote", "add", "-d", "-f", "storage", str(tmp / "dvc-remote"))
    git(dev, "commit", "-q", "-am", "point the DVC remote at this copy")
    git(dev, "remote", "add", "origin", str(origin))
    git(dev, "push", "-q", "--follow-tags", "origin", "main")
    return dev, origin


@pytest.mark.slow
def test_a_user_repository_plans_pull_requests_and_applies_merges(
    tmp_path: Path, github: FakeGitHub, applied_template: Callable[[str], Path]
) -> None:
    dev, origin = applied_user_repository(tmp_path, applied_template("breast-cancer"))
    pr_event = {"action": "synchronize", "number": 7, "pull_request": {"number": 7}}

    # 1. a pull request: the reusable plan workflow posts the plan as the sticky comment
    git(dev, "checkout", "-q", "-b", "tune")
    edit(dev / UC, "C: 1.0", "C: 0.5")
    git(dev, "commit", "-q", "-am", "tune C")
    git(dev, "push", "-q", "origin", "tune")
    runner = Runner(tmp_path / "run1", github)
    runner.event("pull_request", "refs/pull/7/merge", pr_event, GITHUB_BASE_REF="main")
    ws = checkout(origin, "tune", tmp_path / "ws1")
    steps = workflow_job(runner, PLAN_WORKFLOW, {"install": "none", "python-version": ""}, ws)

    assert runner.ran == ["install", "base", "pull", "plan", "comment", "result"]
    assert steps["plan"]["outputs"]["changes"] == "true"
    plan_md = Path(steps["plan"]["outputs"]["file"]).read_text("utf-8")
    (comment,) = github.of(7)
    assert comment["body"].endswith(plan_md)  # the plan, behind its sticky key
    assert comment["body"].startswith("<!--")
    assert "breast-cancer" in comment["body"] and "train" in comment["body"]
    assert git(ws, "rev-parse", "origin/main").strip()  # the base branch is there to compare
    assert git(ws, "status", "--porcelain") == ""  # the plan job wrote nothing in the repo

    # 2. the merge: the action applies, commits as the bot, pushes the commit and its tags
    git(dev, "checkout", "-q", "main")
    git(dev, "merge", "-q", "--ff-only", "tune")
    git(dev, "push", "-q", "origin", "main")
    merged = git(dev, "rev-parse", "HEAD").strip()
    runner = Runner(tmp_path / "run2", github)
    runner.event("push", "refs/heads/main", {"head_commit": {"id": merged}})
    ws = checkout(origin, "main", tmp_path / "ws2")
    marker = tmp_path / "installed"
    inputs = {"command": "apply", "install": f"touch {marker}", "python-version": ""}
    stored = set((tmp_path / "dvc-remote").rglob("*"))
    steps = action_job(runner, inputs, ws)

    assert marker.exists()  # the install input ran
    assert runner.ran == ["check", "install", "guard", "identity", "pull", "apply", "push"]
    assert steps["apply"]["outputs"]["exit-code"] == "0"
    pushed = git(origin, "rev-parse", "main").strip()
    assert pushed == steps["apply"]["outputs"]["commit"] != merged
    assert git(origin, "rev-parse", "main~1").strip() == merged
    who = git(origin, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%B", "main").split("|")
    assert who[0] == who[1] == f"{BOT} <{BOT_EMAIL}>"
    assert "Mlopsctl-Plan: " in who[2]
    pushed_files = set((tmp_path / "dvc-remote").rglob("*")) - stored
    assert pushed_files, "apply pushed nothing to the DVC remote"
    local = git(ws, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/tags")
    assert dict(line.split() for line in local.splitlines()) == remote_tags(origin)

    # 3. the same job on its own apply commit (another token pushed it): nothing happens
    runner.ran.clear()
    action_job(runner, inputs, ws)
    assert runner.ran == ["check", "install", "guard"]
    assert git(origin, "rev-parse", "main").strip() == pushed

    # 4. the pull request moves on: a fresh clone pulls the applied outputs from the DVC
    #    remote, so the plan re-runs what changed only; the comment is updated, not added
    git(dev, "checkout", "-q", "tune")
    git(dev, "pull", "-q", "--ff-only", "origin", "main")
    edit(dev / UC, "C: 0.5", "C: 0.25")
    git(dev, "commit", "-q", "-am", "tune C again")
    git(dev, "push", "-q", "origin", "tune")
    for attempt in (3, 4):
        runner = Runner(tmp_path / f"run{attempt}", github)
        runner.event("pull_request", "refs/pull/7/merge", pr_event, GITHUB_BASE_REF="main")
        ws = checkout(origin, "tune", tmp_path / f"ws{attempt}")
        steps = action_job(runner, {"command": "plan", "install": "none", "python-version": ""}, ws)
        assert runner.ran == ["check", "install", "base", "pull", "plan", "comment", "result"]

    assert github.count("POST") == 1 and github.count("PATCH") == 2
    (comment,) = github.of(7)
    assert comment["body"].endswith(Path(steps["plan"]["outputs"]["file"]).read_text("utf-8"))
    plan = json.loads(mlopsctl(ws, "plan", "--format", "json", check=True).stdout)
    actions = {s["id"]: s["action"] for s in plan["stages"]}
    assert actions["breast-cancer/ingest"] == "up-to-date", actions  # pulled, not re-run
    assert actions["breast-cancer/train"] != "up-to-date", actions


@pytest.mark.slow
def test_apply_pushes_what_it_committed_and_then_fails_when_a_stage_failed(
    tmp_path: Path, github: FakeGitHub, applied_template: Callable[[str], Path]
) -> None:
    dev, origin = applied_user_repository(tmp_path, applied_template("breast-cancer"))
    edit(dev / UC, "roc_auc: {min: 0.95}", "roc_auc: {min: 0.9999}")  # a gate that fails
    git(dev, "commit", "-q", "-am", "an impossible gate")
    git(dev, "push", "-q", "origin", "main")
    runner = Runner(tmp_path / "run", github)
    runner.event("push", "refs/heads/main", {})
    ws = checkout(origin, "main", tmp_path / "ws")

    with pytest.raises(AssertionError, match="step push exited 1"):
        action_job(runner, {"command": "apply", "install": "none", "python-version": ""}, ws)

    assert runner.ran[-2:] == ["apply", "push"]
    log = git(origin, "log", "-1", "--format=%an|%B", "main")
    assert log.startswith(f"{BOT}|") and "Mlopsctl-Gate: breast-cancer" in log


def _bare_and_clone(tmp: Path) -> tuple[Path, Path]:
    origin = tmp / "origin.git"
    git(tmp, "init", "-q", "--bare", "-b", "main", str(origin))
    seed = tmp / "seed"
    seed.mkdir()
    git(seed, "init", "-q", "-b", "main")
    (seed / "README.md").write_text("hello\n")
    git(seed, "add", "-A")
    git(seed, "-c", "user.name=A", "-c", "user.email=a@x", "commit", "-q", "-m", "start")
    git(seed, "push", "-q", str(origin), "main")
    ws = checkout(origin, "main", tmp / "ws")
    git(ws, "config", "user.name", BOT)
    git(ws, "config", "user.email", BOT_EMAIL)
    return origin, ws


def test_the_push_step_carries_the_version_tags_of_the_apply_commit(
    tmp_path: Path, github: FakeGitHub
) -> None:
    origin, ws = _bare_and_clone(tmp_path)
    (ws / "dvc.lock").write_text("schema: '2.0'\n")
    git(ws, "add", "-A")
    git(ws, "commit", "-q", "-m", "mlopsctl apply: demo\n\nMlopsctl-Plan: abc")
    git(ws, "tag", "-a", "demo@v1.0.0", "-m", "demo v1.0.0")  # as apply tags a passed gate
    runner = Runner(tmp_path / "run", github)
    runner.event("push", "refs/heads/main", {})

    action_job(runner, {"command": "apply"}, ws, only={"push"})

    assert git(origin, "rev-parse", "main") == git(ws, "rev-parse", "HEAD")
    assert remote_tags(origin) == {"demo@v1.0.0": git(ws, "rev-parse", "demo@v1.0.0").strip()}


@pytest.mark.parametrize("why", ["trailer", "actor"])
def test_the_guard_skips_apply_commits_and_the_bots_pushes(
    tmp_path: Path, github: FakeGitHub, why: str
) -> None:
    _origin, ws = _bare_and_clone(tmp_path)
    runner = Runner(tmp_path / "run", github)
    runner.event("push", "refs/heads/main", {})
    if why == "trailer":
        git(ws, "commit", "-q", "--allow-empty", "-m", "mlopsctl apply: x\n\nMlopsctl-Plan: p1")
    else:
        runner.env["GITHUB_ACTOR"] = BOT
    steps = action_job(runner, {"command": "apply"}, ws, only={"guard", "apply", "push"})
    assert steps["guard"]["outputs"]["skip"] == "true"
    assert runner.ran == ["guard"]


def test_the_guard_lets_a_merge_through(tmp_path: Path, github: FakeGitHub) -> None:
    _origin, ws = _bare_and_clone(tmp_path)
    runner = Runner(tmp_path / "run", github)
    runner.event("push", "refs/heads/main", {})
    steps = action_job(runner, {"command": "apply"}, ws, only={"guard"})
    assert steps["guard"]["outputs"]["skip"] == "false"


@pytest.mark.slow  # init and a DVC repository: over 20 s on a loaded machine
def test_a_broken_spec_replaces_the_plan_in_the_comment_and_fails_the_job(
    tmp_path: Path, github: FakeGitHub
) -> None:
    dev, origin = user_repository(tmp_path)
    github.add(7, {"login": BOT, "type": "Bot"}, "<!-- mlopsctl:plan -->\nan earlier plan")
    git(dev, "checkout", "-q", "-b", "typo")
    edit(dev / UC, "  primary_metric: roc_auc", "  primary_metrc: roc_auc")
    git(dev, "commit", "-q", "-am", "a typo")
    git(dev, "push", "-q", "origin", "typo")
    runner = Runner(tmp_path / "run", github)
    event = {"number": 7, "pull_request": {"number": 7}}
    runner.event("pull_request", "refs/pull/7/merge", event, GITHUB_BASE_REF="main")
    ws = checkout(origin, "typo", tmp_path / "ws")

    with pytest.raises(AssertionError, match="step result exited 1"):
        workflow_job(runner, PLAN_WORKFLOW, {"install": "none", "python-version": ""}, ws)

    (comment,) = github.of(7)  # the earlier plan no longer shows: the error does
    assert comment["body"].startswith("<!-- mlopsctl:plan -->\n### mlopsctl plan failed (exit 1)")
    assert "primary_metrc" in comment["body"] and "did you mean" in comment["body"]
    assert github.count("PATCH") == 1 and github.count("POST") == 0


@pytest.mark.slow
def test_the_first_merge_of_a_never_applied_repository_applies_everything(
    tmp_path: Path, github: FakeGitHub
) -> None:
    """Day one: `mlopsctl init`, pushed, never applied; the DVC remote does not exist yet."""
    dev, origin = user_repository(tmp_path)
    assert not (dev / "dvc.lock").exists() and not (tmp_path / "dvc-remote").exists()
    head = git(dev, "rev-parse", "HEAD").strip()
    runner = Runner(tmp_path / "run", github)
    runner.event("push", "refs/heads/main", {"head_commit": {"id": head}})
    ws = checkout(origin, "main", tmp_path / "ws")
    steps = action_job(runner, {"command": "apply", "install": "none", "python-version": ""}, ws)

    assert runner.ran == ["check", "install", "guard", "identity", "pull", "apply", "push"]
    assert steps["apply"]["outputs"]["exit-code"] == "0"
    pushed = git(origin, "rev-parse", "main").strip()
    assert pushed == steps["apply"]["outputs"]["commit"] != head
    assert git(origin, "rev-parse", "main~1").strip() == head
    committed = git(origin, "show", "--name-only", "--format=", "main").split()
    assert "dvc.lock" in committed and "dvc.yaml" in committed
    assert any(p.is_file() for p in (tmp_path / "dvc-remote").rglob("*"))
    assert any(t.startswith("breast-cancer@") for t in remote_tags(origin))

    # a developer's next pull request plans on a fresh clone: the outputs come from the remote
    git(dev, "pull", "-q", "--ff-only", "origin", "main")
    git(dev, "checkout", "-q", "-b", "tune")
    edit(dev / UC, "C: 1.0", "C: 0.5")
    git(dev, "commit", "-q", "-am", "tune C")
    git(dev, "push", "-q", "origin", "tune")
    pr = {"action": "opened", "number": 7, "pull_request": {"number": 7}}
    runner = Runner(tmp_path / "run2", github)
    runner.event("pull_request", "refs/pull/7/merge", pr, GITHUB_BASE_REF="main")
    ws = checkout(origin, "tune", tmp_path / "ws2")
    steps = action_job(runner, {"command": "plan", "install": "none", "python-version": ""}, ws)
    assert steps["plan"]["outputs"]["changes"] == "true"
    plan = json.loads(mlopsctl(ws, "plan", "--format", "json", check=True).stdout)
    actions = {s["id"]: s["action"] for s in plan["stages"]}
    assert actions["breast-cancer/ingest"] == "up-to-date", actions
    assert actions["breast-cancer/train"] != "up-to-date", actions
