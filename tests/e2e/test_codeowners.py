"""`mlopsctl codeowners` and validate's check of it: owners review the changes to their models."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mlopsctl.gitops.codeowners import BEGIN, END, CodeownersError, owner_problem, with_block

Cli = Callable[..., "subprocess.CompletedProcess[str]"]
ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "examples" / "breast-cancer"


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def _usecase(root: Path, name: str, owners: str, folder: str = "usecases") -> Path:
    """A valid use case (the bundled breast-cancer set: no data file) named *name*."""
    text = (TEMPLATE / "usecases" / "breast-cancer.yaml").read_text("utf-8")
    text = text.replace("name: breast-cancer ", f"name: {name} ", 1)
    text = text.replace("owners: [ml-team@example.com]", f"owners: {owners}", 1)
    path = root / folder / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Two use cases with owners; no CODEOWNERS yet (mlopsctl needs neither git nor DVC here)."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "mlopsctl.yaml").write_text((TEMPLATE / "mlopsctl.yaml").read_text("utf-8"), "utf-8")
    _usecase(root, "fraud", "['@acme/fraud-team', risk@bank.example]")
    _usecase(root, "churn", "[retention@bank.example]")
    return root


EXPECTED_BLOCK = [
    BEGIN,
    "/usecases/churn.yaml retention@bank.example",
    "/reports/churn/ retention@bank.example",
    "/artifacts/churn/ retention@bank.example",
    "/usecases/fraud.yaml @acme/fraud-team risk@bank.example",
    "/reports/fraud/ @acme/fraud-team risk@bank.example",
    "/artifacts/fraud/ @acme/fraud-team risk@bank.example",
    END,
]


def test_codeowners_writes_a_sorted_block_and_check_agrees(project: Path, cli: Cli) -> None:
    check = cli("-C", project, "codeowners", "--check")
    _no_traceback(check)
    assert check.returncode == 1
    assert ".github/CODEOWNERS is out of date: run mlopsctl codeowners" in check.stderr
    assert not (project / ".github" / "CODEOWNERS").exists()  # --check writes nothing

    proc = cli("-C", project, "codeowners")
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "wrote .github/CODEOWNERS (6 rules from metadata.owners)" in proc.stdout
    text = (project / ".github" / "CODEOWNERS").read_text("utf-8")
    assert text.splitlines() == EXPECTED_BLOCK

    again = cli("-C", project, "codeowners", "--check")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "is up to date" in again.stdout
    validate = cli("-C", project, "validate")
    assert validate.returncode == 0
    assert validate.stderr == ""


def test_lines_outside_the_block_are_the_users(project: Path, cli: Cli) -> None:
    owners = project / ".github" / "CODEOWNERS"
    owners.parent.mkdir()
    head = "# team-wide rules\n* @acme/platform\n\n"
    tail = "\n/docs/ @acme/writers\n"
    owners.write_text(head + "\n".join([BEGIN, "/stale @someone", END]) + "\n" + tail, "utf-8")

    validate = cli("-C", project, "validate")
    _no_traceback(validate)
    assert validate.returncode == 0  # a warning, not an error
    assert "warning: .github/CODEOWNERS is out of date: run mlopsctl codeowners" in validate.stderr

    assert cli("-C", project, "codeowners").returncode == 0
    expected = head + "\n".join(EXPECTED_BLOCK) + "\n" + tail
    assert owners.read_text("utf-8") == expected

    # an owner changes in a pull request: only the block follows
    _usecase(project, "churn", "['@acme/retention']")
    validate = cli("-C", project, "validate")
    assert "CODEOWNERS is out of date" in validate.stderr
    assert cli("-C", project, "codeowners").returncode == 0
    text = owners.read_text("utf-8")
    assert text.startswith(head) and text.endswith(tail)
    assert "/reports/churn/ @acme/retention" in text.splitlines()
    assert "retention@bank.example" not in text
    assert cli("-C", project, "validate").stderr == ""


def test_a_repository_without_the_block_is_not_warned_about(project: Path, cli: Cli) -> None:
    """Opting in is having the block (init writes it); a hand-kept CODEOWNERS stays quiet."""
    owners = project / "CODEOWNERS"
    owners.write_text("* @acme/platform\n", "utf-8")
    validate = cli("-C", project, "validate")
    assert validate.returncode == 0
    assert validate.stderr == ""
    # GitHub reads the root CODEOWNERS when .github/ has none: the block goes there, at the end
    assert cli("-C", project, "codeowners").returncode == 0
    assert not (project / ".github").exists()
    lines = owners.read_text("utf-8").splitlines()
    assert lines[:2] == ["* @acme/platform", ""]
    assert lines[2:] == EXPECTED_BLOCK


def test_an_owner_codeowners_cannot_name_is_left_out_with_a_warning(
    project: Path, cli: Cli
) -> None:
    _usecase(project, "churn", "[Retention Team, retention@bank.example]")
    proc = cli("-C", project, "codeowners")
    _no_traceback(proc)
    assert proc.returncode == 0
    message = (
        "usecases/churn.yaml: metadata.owners: 'Retention Team' is not a GitHub @user, "
        "@org/team or an email address; left out of CODEOWNERS"
    )
    assert f"warning: {message}" in proc.stderr
    text = (project / ".github" / "CODEOWNERS").read_text("utf-8")
    assert "/usecases/churn.yaml retention@bank.example" in text.splitlines()
    assert "Retention" not in text
    validate = cli("-C", project, "validate")
    assert validate.returncode == 0
    assert message in validate.stderr


def test_no_owners_no_file(tmp_path: Path, cli: Cli) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "mlopsctl.yaml").write_text((TEMPLATE / "mlopsctl.yaml").read_text("utf-8"), "utf-8")
    _usecase(root, "churn", "[]")
    for args in (["codeowners"], ["codeowners", "--check"]):
        proc = cli("-C", root, *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "no use case names owners" in proc.stdout
    assert not (root / ".github").exists()


def test_a_symlink_out_of_the_repository_is_neither_read_nor_written(
    project: Path, tmp_path: Path, cli: Cli
) -> None:
    secret = tmp_path / "outside" / "CODEOWNERS"
    secret.parent.mkdir()
    secret.write_text(f"{BEGIN}\nSECRET-CONTENT\n{END}\n", "utf-8")
    (project / ".github").mkdir()
    (project / ".github" / "CODEOWNERS").symlink_to(secret)

    validate = cli("-C", project, "validate")
    _no_traceback(validate)
    assert validate.returncode == 0
    assert "CODEOWNERS not checked" in validate.stderr
    assert "leaves the repository" in validate.stderr
    assert "SECRET" not in validate.stdout + validate.stderr

    for args in (["codeowners"], ["codeowners", "--check"]):
        proc = cli("-C", project, *args)
        _no_traceback(proc)
        assert proc.returncode == 1
        assert "error: path '.github/CODEOWNERS' leaves the repository" in proc.stderr
    assert secret.read_text("utf-8") == f"{BEGIN}\nSECRET-CONTENT\n{END}\n"

    # the same through a symlinked folder
    (project / ".github" / "CODEOWNERS").unlink()
    (project / ".github").rmdir()
    (project / ".github").symlink_to(secret.parent)
    proc = cli("-C", project, "codeowners")
    assert proc.returncode == 1
    assert "leaves the repository" in proc.stderr
    assert secret.read_text("utf-8") == f"{BEGIN}\nSECRET-CONTENT\n{END}\n"


def test_codeowners_that_is_a_directory_is_a_clear_error(project: Path, cli: Cli) -> None:
    (project / ".github" / "CODEOWNERS").mkdir(parents=True)
    proc = cli("-C", project, "codeowners")
    _no_traceback(proc)
    assert proc.returncode == 1
    assert "error: .github/CODEOWNERS is a directory, not a regular file" in proc.stderr


def test_a_broken_block_is_reported_not_guessed(project: Path, cli: Cli) -> None:
    owners = project / ".github" / "CODEOWNERS"
    owners.parent.mkdir()
    owners.write_text(f"* @acme/platform\n{BEGIN}\n/x @y\n", "utf-8")
    proc = cli("-C", project, "codeowners")
    _no_traceback(proc)
    assert proc.returncode == 1
    assert f".github/CODEOWNERS:2: the mlopsctl block has no '{END}' line" in proc.stderr
    assert owners.read_text("utf-8") == f"* @acme/platform\n{BEGIN}\n/x @y\n"


def test_init_writes_the_block_for_the_example(git_repo: Path, cli: Cli) -> None:
    assert cli("-C", git_repo, "init").returncode == 0
    lines = (git_repo / ".github" / "CODEOWNERS").read_text("utf-8").splitlines()
    assert lines == [
        BEGIN,
        "/usecases/breast-cancer.yaml ml-team@example.com",
        "/reports/breast-cancer/ ml-team@example.com",
        "/artifacts/breast-cancer/ ml-team@example.com",
        END,
    ]
    assert cli("-C", git_repo, "codeowners", "--check").returncode == 0


@pytest.mark.parametrize(
    ("owner", "ok"),
    [
        ("@octocat", True),
        ("@acme/ml-team", True),
        ("@acme/ml_team.eu", True),
        ("ml-team@example.com", True),
        ("first.last+ml@bank.example", True),
        ("octocat", False),
        ("Risk Analytics", False),
        ("@", False),
        ("@acme/", False),
        ("a@b", False),
        ("@bad user", False),
    ],
)
def test_which_owners_codeowners_can_name(owner: str, ok: bool) -> None:
    assert (owner_problem(owner) == "") is ok


def test_with_block_is_idempotent_and_removes_an_empty_block() -> None:
    text = "* @all\n"
    once = with_block(text, ["/a @b"])
    assert once == f"* @all\n\n{BEGIN}\n/a @b\n{END}\n"
    assert with_block(once, ["/a @b"]) == once
    assert with_block(once, []) == "* @all\n\n"
    assert with_block(None, []) is None
    with pytest.raises(CodeownersError, match="2 mlopsctl blocks"):
        with_block(f"{BEGIN}\n{END}\n{BEGIN}\n{END}\n", ["/a @b"])
