"""Editors and hooks: the JSON Schemas in the repository, the modeline, VS Code, pre-commit."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlopsctl.project_init import SCHEMA_DIR, schema_files

Cli = Callable[..., "subprocess.CompletedProcess[str]"]
ROOT = Path(__file__).resolve().parents[2]
PACKAGE_SCHEMAS = ROOT / "mlopsctl" / "schemas"
MODELINE = "# yaml-language-server: $schema="


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def _schema_of(path: Path) -> Path:
    """The file the yaml-language-server line of *path* points at, resolved as editors do."""
    first = path.read_text("utf-8").splitlines()[0]
    assert first.startswith(MODELINE), first
    target = first[len(MODELINE) :].strip()
    assert "://" not in target, f"{path.name} still points at a URL: {target}"
    return (path.parent / target).resolve()


def _validator(folder: Path, name: str) -> Any:
    """A validator for *name*, with every schema of *folder* (and only those) in its registry."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    registry: Registry[Any] = Registry()
    for path in sorted(folder.glob("*.schema.json")):
        schema = json.loads(path.read_text("utf-8"))
        resource = Resource.from_contents(schema)
        registry = registry.with_resources([(schema["$id"], resource), (path.name, resource)])
    schema = json.loads((folder / name).read_text("utf-8"))
    return Draft202012Validator(schema, registry=registry)


@pytest.mark.parametrize("example", ["breast-cancer", "house-prices"])
def test_init_points_the_example_at_schemas_in_the_repository(
    example: str, git_repo: Path, cli: Cli
) -> None:
    proc = cli("-C", git_repo, "init", "--example", example)
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"wrote the JSON Schemas to {SCHEMA_DIR}/" in proc.stdout

    written = git_repo / SCHEMA_DIR
    shipped = sorted(p.name for p in PACKAGE_SCHEMAS.glob("*.schema.json"))
    assert sorted(p.name for p in written.iterdir()) == shipped
    for name in shipped:
        assert (written / name).read_bytes() == (PACKAGE_SCHEMAS / name).read_bytes()

    usecase = git_repo / "usecases" / f"{example}.yaml"
    assert _schema_of(usecase) == (written / "usecase.schema.json").resolve()
    assert _schema_of(git_repo / "mlopsctl.yaml") == (written / "project.schema.json").resolve()

    # the files validate against the schemas as written into the repository
    errors = list(_validator(written, "usecase.schema.json").iter_errors(_yaml(usecase)))
    assert errors == []
    project = _yaml(git_repo / "mlopsctl.yaml")
    assert list(_validator(written, "project.schema.json").iter_errors(project)) == []
    # ... and a broken one does not (the written schema is the real one, not a stub)
    broken = _yaml(usecase)
    broken["model"]["paramz"] = broken["model"].pop("params")
    assert list(_validator(written, "usecase.schema.json").iter_errors(broken))

    # .gitignore does not hide them: they are committed with the repository
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", f"{SCHEMA_DIR}/usecase.schema.json"], cwd=git_repo
    )
    assert ignored.returncode == 1

    settings = json.loads((git_repo / ".vscode" / "settings.json").read_text("utf-8"))
    assert settings == {
        "yaml.schemas": {
            f"./{SCHEMA_DIR}/project.schema.json": "mlopsctl.yaml",
            f"./{SCHEMA_DIR}/usecase.schema.json": ["usecases/*.yaml"],
        }
    }
    for key in settings["yaml.schemas"]:
        assert (git_repo / key).is_file(), key


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text("utf-8"))


def test_init_merges_into_existing_vscode_settings(git_repo: Path, cli: Cli) -> None:
    vscode = git_repo / ".vscode" / "settings.json"
    vscode.parent.mkdir()
    mine = {
        "editor.rulers": [100],
        "yaml.schemas": {"https://json.schemastore.org/github-workflow.json": ".github/*.yml"},
    }
    vscode.write_text(json.dumps(mine, indent=4), "utf-8")
    (git_repo / "mlopsctl.yaml").write_text(
        (ROOT / "examples" / "breast-cancer" / "mlopsctl.yaml")
        .read_text("utf-8")
        .replace('usecases: ["usecases/*.yaml"]', 'usecases: ["models/**/*.yaml"]'),
        "utf-8",
    )
    (git_repo / "models" / "ok").mkdir(parents=True)
    usecase = ROOT / "examples" / "breast-cancer" / "usecases" / "breast-cancer.yaml"
    (git_repo / "models" / "ok" / "bc.yaml").write_bytes(usecase.read_bytes())

    proc = cli("-C", git_repo, "init")
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "added yaml.schemas to .vscode/settings.json" in proc.stdout
    settings = json.loads(vscode.read_text("utf-8"))
    assert settings["editor.rulers"] == [100]
    assert settings["yaml.schemas"] == {
        "https://json.schemastore.org/github-workflow.json": ".github/*.yml",
        f"./{SCHEMA_DIR}/project.schema.json": "mlopsctl.yaml",
        f"./{SCHEMA_DIR}/usecase.schema.json": ["models/**/*.yaml"],  # the project's globs
    }
    before = vscode.read_bytes()
    again = cli("-C", git_repo, "init")
    assert again.returncode == 0
    assert "settings.json" not in again.stdout
    assert vscode.read_bytes() == before


@pytest.mark.parametrize(
    "content",
    ['{\n  // my settings\n  "editor.rulers": [100],\n}\n', "[1, 2]\n", '{"yaml.schemas": 3}\n'],
    ids=["jsonc", "not-an-object", "schemas-not-an-object"],
)
def test_init_leaves_settings_it_cannot_merge_and_warns(
    content: str, git_repo: Path, cli: Cli
) -> None:
    vscode = git_repo / ".vscode" / "settings.json"
    vscode.parent.mkdir()
    vscode.write_text(content, "utf-8")
    proc = cli("-C", git_repo, "init")
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning: left .vscode/settings.json alone" in proc.stderr
    assert vscode.read_text("utf-8") == content
    assert (git_repo / SCHEMA_DIR / "usecase.schema.json").is_file()


def test_schema_command_writes_every_schema(tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "out" / "schemas"
    proc = cli("-C", tmp_path, "schema", "--output", "out/schemas")
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = sorted(p.name for p in PACKAGE_SCHEMAS.glob("*.schema.json"))
    assert {"usecase.schema.json", "project.schema.json", "plan.schema.json"} <= set(names)
    assert sorted(p.name for p in out.iterdir()) == names
    for name in names:
        assert (out / name).read_bytes() == (PACKAGE_SCHEMAS / name).read_bytes()
        assert f"wrote out/schemas/{name}" in proc.stdout
    assert sorted(schema_files()) == names

    again = cli("-C", tmp_path, "schema", "--output", str(out))
    assert again.returncode == 0
    assert "wrote" not in again.stdout
    assert again.stdout.count("up to date") == len(names)


def test_schema_command_defaults_to_the_ignored_mlopsctl_folder(git_repo: Path, cli: Cli) -> None:
    assert cli("-C", git_repo, "init").returncode == 0
    sub = git_repo / "usecases"
    proc = cli("-C", sub, "schema")
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (git_repo / ".mlopsctl" / "schemas" / "usecase.schema.json").is_file()
    assert "wrote" in proc.stdout and ".mlopsctl/schemas/usecase.schema.json" in proc.stdout
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored=no", ".mlopsctl"],
        cwd=git_repo,
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout == ""  # the repository did not change


def test_schema_command_refuses_a_mlopsctl_symlink_out_of_the_repository(
    git_repo: Path, tmp_path: Path, cli: Cli
) -> None:
    assert cli("-C", git_repo, "init").returncode == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    (git_repo / ".mlopsctl").rename(tmp_path / "old-cache")
    (git_repo / ".mlopsctl").symlink_to(outside)
    proc = cli("-C", git_repo, "schema")
    _no_traceback(proc)
    assert proc.returncode == 1
    assert "leaves the repository" in proc.stderr
    assert list(outside.iterdir()) == []


def test_validate_says_when_the_committed_schemas_are_older(git_repo: Path, cli: Cli) -> None:
    assert cli("-C", git_repo, "init").returncode == 0
    assert cli("-C", git_repo, "validate").stderr == ""
    stale = git_repo / SCHEMA_DIR / "usecase.schema.json"
    stale.write_text(stale.read_text("utf-8").replace('"title"', '"title" ', 1), "utf-8")
    validate = cli("-C", git_repo, "validate")
    assert validate.returncode == 0
    assert (
        f"warning: {SCHEMA_DIR}/usecase.schema.json differ from this mlopsctl's schemas: run "
        f"mlopsctl schema --output {SCHEMA_DIR}"
    ) in validate.stderr
    assert cli("-C", git_repo, "schema", "--output", SCHEMA_DIR).returncode == 0
    assert cli("-C", git_repo, "validate").stderr == ""


# --- pre-commit --------------------------------------------------------------------------------

HOOKS = ROOT / ".pre-commit-hooks.yaml"
# pre-commit's manifest fields (pre_commit/clientlib.py MANIFEST_HOOK_DICT)
REQUIRED = {"id", "name", "entry", "language"}
KNOWN = REQUIRED | {
    "alias",
    "files",
    "exclude",
    "types",
    "types_or",
    "exclude_types",
    "additional_dependencies",
    "args",
    "always_run",
    "fail_fast",
    "pass_filenames",
    "description",
    "language_version",
    "log_file",
    "minimum_pre_commit_version",
    "require_serial",
    "stages",
    "verbose",
}


def _hooks() -> list[dict[str, Any]]:
    hooks = yaml.safe_load(HOOKS.read_text("utf-8"))
    assert isinstance(hooks, list)
    return hooks


def test_pre_commit_manifest_has_the_fields_pre_commit_requires() -> None:
    hooks = _hooks()
    assert [h["id"] for h in hooks] == ["mlopsctl-validate", "mlopsctl-codeowners"]
    for hook in hooks:
        assert set(hook) >= REQUIRED, hook
        assert set(hook) <= KNOWN, set(hook) - KNOWN
        assert hook["language"] == "python"
        assert hook["entry"].split()[0] == "mlopsctl"
        assert hook["pass_filenames"] is False  # whole-project rules need every use case
        files = re.compile(hook["files"])
        for path in ("mlopsctl.yaml", "usecases/churn.yaml", "ml/usecases/a/b.yml"):
            assert files.search(path), (hook["id"], path)
        for path in ("data/churn.csv", "src/usecases.py", "dvc.yaml"):
            assert not files.search(path), (hook["id"], path)


def test_pre_commit_itself_accepts_the_manifest() -> None:
    clientlib = pytest.importorskip("pre_commit.clientlib")
    hooks = clientlib.load_manifest(str(HOOKS))
    assert [h["id"] for h in hooks] == ["mlopsctl-validate", "mlopsctl-codeowners"]


@pytest.mark.parametrize("hook_id", ["mlopsctl-validate", "mlopsctl-codeowners"])
def test_pre_commit_entries_pass_a_good_repository_and_fail_a_broken_one(
    hook_id: str, git_repo: Path, cli: Cli
) -> None:
    assert cli("-C", git_repo, "init").returncode == 0
    hook = next(h for h in _hooks() if h["id"] == hook_id)
    # the entry as pre-commit runs it, in the repository's top folder, with this interpreter
    argv = [sys.executable, "-m", "mlopsctl", *shlex.split(hook["entry"])[1:]]

    def run() -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(argv, cwd=git_repo, capture_output=True, text=True, check=False)
        _no_traceback(proc)
        return proc

    ok = run()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    usecase = git_repo / "usecases" / "breast-cancer.yaml"
    text = usecase.read_text("utf-8")
    if hook_id == "mlopsctl-validate":
        usecase.write_text(text.replace("problem: binary_classification", "problem: binary"))
        failed = run()
        assert failed.returncode == 1
        assert "usecases/breast-cancer.yaml:" in failed.stdout
    else:
        usecase.write_text(text.replace("ml-team@example.com", "'@acme/ml'"), "utf-8")
        failed = run()
        assert failed.returncode == 1
        assert "CODEOWNERS is out of date" in failed.stderr


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("MLOPSCTL_TEST_TRY_REPO") != "1",
    reason="installs mlopsctl into a fresh environment from the package index (minutes); "
    "set MLOPSCTL_TEST_TRY_REPO=1",
)
def test_pre_commit_try_repo_runs_both_hooks(git_repo: Path, cli: Cli, tmp_path: Path) -> None:
    """pre-commit itself, on this repository's committed HEAD, in a user's repository."""
    pytest.importorskip("pre_commit")
    assert cli("-C", git_repo, "init").returncode == 0
    subprocess.run(["git", "add", "-A"], cwd=git_repo, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=git_repo, check=True)
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit"), "NO_COLOR": "1"}
    env.pop("PYTHONPATH", None)  # the hooks' own environment, not this one
    argv = [sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "--all-files"]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=git_repo, env=env, capture_output=True, text=True, timeout=1800
        )

    ok = run()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "mlopsctl validate" in ok.stdout and "mlopsctl codeowners --check" in ok.stdout
    usecase = git_repo / "usecases" / "breast-cancer.yaml"
    text = usecase.read_text("utf-8").replace("problem: binary_classification", "problem: binary")
    usecase.write_text(text.replace("ml-team@example.com", "'@acme/ml'"), "utf-8")
    failed = run()
    assert failed.returncode == 1
    assert "usecases/breast-cancer.yaml:" in failed.stdout
    assert "- hook id: mlopsctl-validate" in failed.stdout
