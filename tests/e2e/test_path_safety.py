"""Hostile pull requests: symlinks out of the repository, FIFOs, devices, odd spec files.

Each test builds a copy of the annotated SPEC example, commits (writes) the trap a pull request
could carry, runs the CLI in a subprocess and checks the exit code, the exact
``file:line:col: key.path: message`` line, that no traceback leaks and that nothing outside the
repository was read or echoed. A FIFO would make a careless reader hang forever: every run has a
timeout, so a hang fails the test instead of blocking it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CLI_ENV

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "spec_example"
UC = "usecases/churn.yaml"
SECRET = "s3cr3t-value-from-outside"


def run(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "mlopsctl", "-C", str(root), *args],
        env=env or CLI_ENV,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,  # a FIFO read would hang: fail instead
    )
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    return proc


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "elsewhere").mkdir()
    return root


def at(root: Path, needle: str, token: str) -> tuple[int, int]:
    """1-based line and column of *token* at or after the unique *needle* of the use case."""
    text = (root / UC).read_text("utf-8")
    assert text.count(needle) == 1, needle
    pos = text.index(token, text.index(needle))
    return text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1


def edit(root: Path, old: str, new: str) -> None:
    path = root / UC
    text = path.read_text("utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), "utf-8")


def line(file: str, where: tuple[int, int], path: str, message: str) -> str:
    return rf"^{re.escape(file)}:{where[0]}:{where[1]}: " + (
        rf"{re.escape(path)}: {re.escape(message)}$" if path else rf"{re.escape(message)}$"
    )


def assert_line(proc: subprocess.CompletedProcess[str], pattern: str) -> None:
    text = proc.stdout + proc.stderr.removeprefix("error: ")
    assert re.search(pattern, text, re.MULTILINE), f"{pattern!r} not in:\n{text}"


SOURCE = ("customers: {format: csv, path: data/customers.csv}", "data/customers.csv")


# --- data sources: regular files inside the repository, never read otherwise ----------------


def test_source_symlinked_to_etc_passwd_is_refused_and_never_hashed(project: Path) -> None:
    (project / "data/customers.csv").unlink()
    os.symlink("/etc/passwd", project / "data/customers.csv")
    expected = line(
        UC,
        at(project, *SOURCE),
        "data.sources.customers.path",
        "path 'data/customers.csv' leaves the repository: 'data/customers.csv' is a symlink "
        "to '/etc/passwd'",
    )
    for command in (["validate"], ["plan"], ["plan", "--format", "json"]):
        proc = run(project, *command)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert_line(proc, expected)
    passwd_md5 = hashlib.md5(Path("/etc/passwd").read_bytes()).hexdigest()
    proc = run(project, "plan", "-o", str(project / "plan.json"))
    assert proc.returncode == 1
    assert passwd_md5 not in proc.stdout + proc.stderr
    assert not (project / "plan.json").exists()
    hashes = project / ".mlopsctl" / "hashes.json"
    assert not hashes.exists() or passwd_md5 not in hashes.read_text()


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_source_that_never_ends_is_refused_without_reading_it(project: Path, kind: str) -> None:
    src = project / "data/customers.csv"
    src.unlink()
    if kind == "fifo":
        os.mkfifo(src)
        message = "data file 'data/customers.csv' is a FIFO (named pipe), not a regular file"
    else:
        os.symlink("/dev/zero", src)
        message = (
            "path 'data/customers.csv' leaves the repository: 'data/customers.csv' is a symlink "
            "to '/dev/zero'"
        )
    expected = line(UC, at(project, *SOURCE), "data.sources.customers.path", message)
    for command in ("validate", "plan"):
        proc = run(project, command)  # would hang forever if it opened the FIFO
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert_line(proc, expected)


def test_source_that_is_a_directory_is_refused(project: Path) -> None:
    (project / "data/customers.csv").unlink()
    (project / "data/customers.csv").mkdir()
    proc = run(project, "validate")
    assert proc.returncode == 1
    assert_line(
        proc,
        line(
            UC,
            at(project, *SOURCE),
            "data.sources.customers.path",
            "data file 'data/customers.csv' is a directory, not a regular file",
        ),
    )


def test_custom_dep_that_is_a_fifo_is_refused(project: Path) -> None:
    os.mkfifo(project / "data/pipe")
    edit(
        project,
        "deps: [src/featurize.py, data/customers.csv]",
        "deps: [src/featurize.py, data/pipe]",
    )
    expected = line(
        UC,
        at(project, "deps: [src/featurize.py, data/pipe]", "data/pipe"),
        "stages[0].deps[1]",
        "dependency 'data/pipe' is a FIFO (named pipe), not a regular file",
    )
    for command in ("validate", "plan"):
        proc = run(project, command)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert_line(proc, expected)


# --- outputs through symlinks that leave the repository ---------------------------------------


def test_output_through_a_symlinked_folder_is_refused(project: Path, tmp_path: Path) -> None:
    os.symlink(tmp_path / "elsewhere", project / "data/vdir")
    (tmp_path / "elsewhere/important.txt").write_text("keep me")
    edit(project, "outs: [data/features.csv]", "outs: [data/vdir/important.txt]")
    proc = run(project, "validate")
    assert proc.returncode == 1
    assert_line(
        proc,
        line(
            UC,
            at(project, "outs: [data/vdir", "data/vdir"),
            "stages[0].outs[0]",
            f"path 'data/vdir/important.txt' leaves the repository: 'data/vdir' is a symlink to "
            f"'{tmp_path / 'elsewhere'}'",
        ),
    )


def test_builtin_output_folder_symlinked_out_is_refused(project: Path, tmp_path: Path) -> None:
    (project / "reports").mkdir()
    os.symlink(tmp_path / "elsewhere", project / "reports/churn")
    proc = run(project, "plan")
    assert proc.returncode == 1
    assert_line(
        proc,
        line(
            UC,
            at(project, "  name: churn", "churn"),
            "metadata.name",
            f"output folder 'reports/churn' leaves the repository: 'reports/churn' is a "
            f"symlink to '{tmp_path / 'elsewhere'}'",
        ),
    )


# --- spec files: regular files inside the repository ------------------------------------------


def test_usecase_file_symlinked_out_of_the_repo_is_not_read(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere/secret.yaml"
    outside.write_text(f"apiVersion: {SECRET}\nkind: {SECRET}\n")
    os.symlink(outside, project / "usecases/evil.yaml")
    for args in (["validate"], ["validate", "usecases/evil.yaml"], ["plan"]):
        proc = run(project, *args)
        assert proc.returncode == 1
        assert SECRET not in proc.stdout + proc.stderr
        assert_line(
            proc,
            line(
                "usecases/evil.yaml",
                (1, 1),
                "",
                f"spec file leaves the repository: 'usecases/evil.yaml' is a symlink to "
                f"'{outside}'",
            ),
        )


def test_project_file_symlinked_out_of_the_repo_is_not_read(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere/mlopsctl.yaml"
    shutil.move(project / "mlopsctl.yaml", outside)
    os.symlink(outside, project / "mlopsctl.yaml")
    proc = run(project, "validate")
    assert proc.returncode == 1
    assert_line(
        proc,
        line(
            "mlopsctl.yaml",
            (1, 1),
            "",
            f"spec file leaves the repository: 'mlopsctl.yaml' is a symlink to '{outside}'",
        ),
    )


@pytest.mark.parametrize("kind", ["directory", "fifo", "dangling"])
def test_spec_path_that_is_not_a_file_is_an_error(project: Path, kind: str) -> None:
    odd = project / "usecases/odd.yaml"
    if kind == "directory":
        odd.mkdir()
        message = "is a directory, not a regular file"
    elif kind == "fifo":
        os.mkfifo(odd)
        message = "is a FIFO (named pipe), not a regular file"
    else:
        os.symlink("gone.yaml", odd)
        message = "is a dangling symlink (to 'gone.yaml')"
    expected = line("usecases/odd.yaml", (1, 1), "", message)
    for args in (["validate"], ["validate", "usecases/odd.yaml"], ["plan"]):
        proc = run(project, *args)
        assert proc.returncode == 1, (args, proc.stdout + proc.stderr)
        assert_line(proc, expected)


# --- the spec cache never hides an error --------------------------------------------------------


@pytest.mark.parametrize("kind", ["duplicate-key", "too-deep"])
def test_a_broken_file_fails_every_time(project: Path, kind: str) -> None:
    if kind == "duplicate-key":
        edit(project, "  primary_metric: roc_auc", "  primary_metric: roc_auc\n  target: other")
        where = at(project, "target: other", "target")
        expected = line(
            UC,
            where,
            "goal.target",
            "duplicate key 'target' (a later value would silently replace the earlier one)",
        )
    else:  # nested 70 levels under model.params, where any value passes the schema
        deep = "[" * 70 + "]" * 70
        edit(project, "params: {max_iter: 200,", f"params: {{deep: {deep}, max_iter: 200,")
        line_no, col = at(project, "deep: [", "[")
        expected = line(
            UC,
            (line_no, col + 61),
            "model.params.deep" + "[0]" * 61,
            "nested more than 64 levels deep",
        )
    for command in ("validate", "validate", "plan", "plan", "validate"):
        proc = run(project, command)
        assert proc.returncode == 1, (command, proc.stdout + proc.stderr)
        assert_line(proc, expected)


def test_a_mlopsctl_folder_symlinked_out_is_refused(project: Path, tmp_path: Path) -> None:
    """git ignores `.mlopsctl/` as a folder only: a pull request can commit a symlink there."""
    os.symlink(tmp_path / "elsewhere", project / ".mlopsctl")
    for command in ("validate", "plan"):
        proc = run(project, command)
        assert proc.returncode == 1
        assert proc.stderr.strip() == (
            f"error: path '.mlopsctl' leaves the repository: '.mlopsctl' is a symlink to "
            f"'{tmp_path / 'elsewhere'}' (mlopsctl keeps its cache, locks and logs there)"
        )
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_an_output_of_another_use_case_is_refused(project: Path) -> None:
    text = (project / UC).read_text("utf-8")
    second = text.replace("  name: churn ", "  name: churn-two ").replace(
        "outs: [data/features.csv]", "outs: [data]"
    )
    (project / "usecases/second.yaml").write_text(second, "utf-8")
    proc = run(project, "validate")
    assert proc.returncode == 1
    text_lines = second.splitlines()
    row = next(i for i, t in enumerate(text_lines, 1) if "outs: [data]" in t)
    col = text_lines[row - 1].index("data]") + 1
    assert_line(
        proc,
        line(
            "usecases/second.yaml",
            (row, col),
            "stages[0].outs[0]",
            "output 'data' overlaps the output 'data/features.csv' of usecases/churn.yaml: "
            "stages[0].outs[0]",
        ),
    )
