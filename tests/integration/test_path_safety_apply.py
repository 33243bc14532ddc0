"""apply never deletes or writes anything outside the declared outputs, inside the repository.

Real git, real DVC, the installed CLI: a pull request commits a symlink that leads out of the
repository (or declares the repository itself as an output), apply refuses with one message and
the file outside is untouched. The stage runner checks again right before it removes or replaces
an output (a symlink can appear after validation), which the last tests prove on real files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mlopsctl.compile.graph import Stage, compile_usecase
from mlopsctl.errors import MlopsctlError
from mlopsctl.execute.task import StageJob, _land, run_job
from mlopsctl.spec.loader import load_project

from .conftest import ENV, copy_project, dvc, git, make_project, mlopsctl

UC = "usecases/breast-cancer.yaml"
CUSTOM = "stages:\n  - name: extract\n    cmd: {cmd}\n    outs: [{out}]\n    before: validate\n"


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example, initialised and committed (no remote), built once: `_fresh` copies it."""
    return make_project(tmp_path_factory.mktemp("init"), "breast-cancer", remote=False)


def _fresh(initialised: Path, tmp_path: Path) -> Path:
    """A private copy of the initialised example: what `make_project` gives, without `init`."""
    return copy_project(initialised.parent, tmp_path)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the repository, with a file that must survive every apply."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "important.txt").write_text("keep me\n")
    (folder / "metrics.json").write_text('{"keep": true}\n')
    return folder


def untouched(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == ["important.txt", "metrics.json"]
    assert (folder / "important.txt").read_text() == "keep me\n"
    assert (folder / "metrics.json").read_text() == '{"keep": true}\n'


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip()]


def test_apply_refuses_a_report_folder_symlinked_out(
    initialised: Path, tmp_path: Path, outside: Path
) -> None:
    root = _fresh(initialised, tmp_path)
    (root / "reports").mkdir()
    os.symlink(outside, root / "reports/breast-cancer")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "a hostile symlink")
    res = mlopsctl(root, "apply")
    assert res.returncode == 1
    assert error_lines(res.stderr) == [
        f"error: {UC}:8:9: metadata.name: output folder 'reports/breast-cancer' leaves the "
        f"repository: 'reports/breast-cancer' is a symlink to '{outside}'"
    ], res.stderr
    untouched(outside)
    assert not (root / "dvc.lock").exists()


def test_apply_refuses_an_output_through_a_symlinked_folder(
    initialised: Path, tmp_path: Path, outside: Path
) -> None:
    root = _fresh(initialised, tmp_path)
    (root / "data").mkdir()
    os.symlink(outside, root / "data/vdir")
    with (root / UC).open("a") as fh:
        fh.write(
            CUSTOM.format(cmd="echo new > data/vdir/important.txt", out="data/vdir/important.txt")
        )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "a hostile symlink")
    res = mlopsctl(root, "apply")
    assert res.returncode == 1
    (msg,) = error_lines(res.stderr)
    assert msg.endswith(
        "stages[0].outs[0]: path 'data/vdir/important.txt' leaves the repository: 'data/vdir' "
        f"is a symlink to '{outside}'"
    ), msg
    untouched(outside)


def test_apply_refuses_the_repository_as_an_output(initialised: Path, tmp_path: Path) -> None:
    root = _fresh(initialised, tmp_path)
    with (root / UC).open("a") as fh:
        fh.write(CUSTOM.format(cmd="echo hi", out="."))
    res = mlopsctl(root, "apply")
    assert res.returncode == 1
    (msg,) = error_lines(res.stderr)
    assert msg.endswith("stages[0].outs[0]: output '.' is the whole repository"), msg
    assert (root / ".git").is_dir() and (root / ".dvc").is_dir() and (root / UC).is_file()


# --- the stage runner checks again, right before it touches an output ------------------------


def _project_stages(
    initialised: Path, tmp_path: Path, extra: str = ""
) -> tuple[Path, dict[str, Stage], StageJob]:
    root = _fresh(initialised, tmp_path)
    (root / "data").mkdir()
    if extra:
        with (root / UC).open("a") as fh:
            fh.write(extra)
    project = load_project(root)
    (ucf,) = project.usecases
    stages = {st.name: st for st in compile_usecase(ucf)}
    job = StageJob(str(root), stages["ingest"], ucf.spec)
    return root, stages, job


def test_landing_refuses_a_folder_that_became_a_symlink_out(
    initialised: Path, tmp_path: Path, outside: Path
) -> None:
    from mlopsctl.spec.paths import UnsafePathError

    root, stages, _job = _project_stages(initialised, tmp_path)
    gate = stages["gate"]
    staging = root / ".mlopsctl/tmp/gate.test"
    (staging / "reports/breast-cancer").mkdir(parents=True)
    (staging / gate.reports[0]).write_text('{"passed": true}\n')
    (root / "reports").mkdir()
    os.symlink(outside, root / "reports/breast-cancer")  # after validation, before landing
    with pytest.raises(UnsafePathError) as err:
        _land(staging, root, gate, partial=False)
    assert err.value.message == (
        f"path '{gate.reports[0]}' leaves the repository: 'reports/breast-cancer' is a symlink "
        f"to '{outside}'"
    )
    untouched(outside)
    assert (staging / gate.reports[0]).exists()  # nothing moved


def test_custom_stage_removes_nothing_through_a_symlink_out(
    initialised: Path, tmp_path: Path, outside: Path
) -> None:
    root, stages, job = _project_stages(
        initialised,
        tmp_path,
        CUSTOM.format(cmd="echo new > data/vdir/important.txt", out="data/vdir/important.txt"),
    )
    os.symlink(outside, root / "data/vdir")  # after validation, before the stage runs
    result = run_job(StageJob(job.root, stages["extract"], job.usecase))
    assert not result.ok
    assert result.message == (
        "path 'data/vdir/important.txt' leaves the repository: 'data/vdir' is a symlink to "
        f"'{outside}'"
    )
    untouched(outside)


def test_inside_repo_resolves_inside_links_and_refuses_the_rest(tmp_path: Path) -> None:
    from mlopsctl.spec.paths import inside_repo

    root = tmp_path / "repo"
    (root / "data/real").mkdir(parents=True)
    os.symlink("real", root / "data/alias")
    os.symlink("../../outside", root / "data/up")
    os.symlink("loop", root / "data/loop")
    assert inside_repo(root, "data/alias/x.csv") == (root / "data/real/x.csv").resolve()
    assert inside_repo(root, "data/new/deeper/x.csv") == root.resolve() / "data/new/deeper/x.csv"
    for rel, message in [
        ("data/up/x", "leaves the repository: 'data/up' is a symlink to '../../outside'"),
        ("x/../data/up/y", "leaves the repository: 'data/up' is a symlink to '../../outside'"),
        ("data/../..", "leaves the repository"),
        ("/etc/passwd", "must be relative to the repository"),
        ("data/loop", "has too many levels of symbolic links"),
    ]:
        with pytest.raises(MlopsctlError) as err:
            inside_repo(root, rel)
        assert err.value.message == f"path '{rel}' {message}"


# --- ${env:NAME} in a custom command ---------------------------------------------------------


@pytest.mark.slow
def test_env_reference_in_a_custom_cmd_runs_and_its_value_is_never_written(
    applied: Callable[[str], Path],
) -> None:
    # the applied example: the custom stage goes before the gate, so that the apply runs it and
    # the gate only (where it sits in the pipeline is not what this test is about)
    root = applied("breast-cancer")
    (root / "data").mkdir(exist_ok=True)
    value = "tok en-Value_42"  # a space: the value must stay one word
    cmd = 'test "$#" = 0 && printf %s ${env:MLOPSCTL_T_TOKEN} | wc -c > data/len.txt'
    with (root / UC).open("a") as fh:
        fh.write(CUSTOM.format(cmd=f"'{cmd}'", out="data/len.txt").replace("validate", "gate"))
    env = {**ENV, "MLOPSCTL_T_TOKEN": value}  # ENV: no CI (it refuses uncommitted specs)
    assert mlopsctl(root, "validate").returncode == 0
    res = mlopsctl(root, "apply", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (root / "data/len.txt").read_text().strip() == str(len(value))
    dvc_yaml = (root / "dvc.yaml").read_text()
    assert "${" not in dvc_yaml and '"$MLOPSCTL_T_TOKEN"' in dvc_yaml
    for f in ("dvc.yaml", "dvc.lock"):
        assert value not in (root / f).read_text()
    assert value not in git(root, "log", "-p", "--all")
    # plain DVC runs the generated dvc.yaml too
    (root / "data/len.txt").unlink()
    proc = dvc(root, "repro", "-f", "-s", "breast-cancer_extract", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_env_reference_that_is_not_set_fails_the_stage_clearly(
    initialised: Path, tmp_path: Path
) -> None:
    root, stages, job = _project_stages(
        initialised,
        tmp_path,
        CUSTOM.format(cmd="echo ${env:MLOPSCTL_T_UNSET} > data/x.txt", out="data/x.txt"),
    )
    os.environ.pop("MLOPSCTL_T_UNSET", None)
    (root / "data/x.txt").write_text("before\n")
    result = run_job(StageJob(job.root, stages["extract"], job.usecase))
    assert not result.ok
    assert result.message == (
        "breast-cancer/extract: environment variable MLOPSCTL_T_UNSET not set "
        "(its command uses ${env:NAME})"
    )
    assert (root / "data/x.txt").read_text() == "before\n"  # the command never ran
