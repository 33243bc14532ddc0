"""`mlopsctl init`: a fresh repo becomes a valid mlopsctl project, and a second run keeps it."""

from __future__ import annotations

import configparser
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., "subprocess.CompletedProcess[str]"]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").iterdir() if (p / "mlopsctl.yaml").is_file())


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def _data_files(example: str) -> list[str]:
    data = ROOT / "examples" / example / "data"
    return (
        sorted(f"data/{p.name}" for p in data.iterdir() if p.suffix in (".csv", ".parquet"))
        if (data.is_dir())
        else []
    )


def _snapshot(root: Path) -> dict[str, bytes]:
    """The files init writes or touches (not git's or DVC's internals)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not rel.startswith((".git/", ".dvc/tmp/", ".dvc/cache/")):
            out[rel] = p.read_bytes()
    return out


@pytest.mark.parametrize("example", EXAMPLES)
def test_init_sets_up_a_valid_project(example: str, git_repo: Path, cli: Cli) -> None:
    proc = cli("-C", git_repo, "init", "--example", example)
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    assert (git_repo / ".dvc").is_dir()
    config = configparser.ConfigParser()
    config.read(git_repo / ".dvc" / "config")
    assert config.get("core", "analytics").lower() == "false"

    assert (git_repo / "mlopsctl.yaml").is_file()
    usecase = git_repo / "usecases" / f"{example}.yaml"
    assert usecase.is_file()
    assert usecase.read_text("utf-8").startswith("# yaml-language-server: $schema=")
    assert "usecase.schema.json" in usecase.read_text("utf-8").splitlines()[0]

    for rel in _data_files(example):
        assert (git_repo / rel).is_file(), rel
        assert (git_repo / f"{rel}.dvc").is_file(), f"{rel} is not tracked by DVC"
        ignored = (git_repo / rel).parent / ".gitignore"
        assert f"/{Path(rel).name}" in ignored.read_text("utf-8").splitlines()
    assert not (git_repo / "make_data.py").exists()
    assert not (git_repo / "README.md").exists()

    assert ".mlopsctl/" in (git_repo / ".gitignore").read_text("utf-8").splitlines()

    validate = cli("-C", git_repo, "validate")
    _no_traceback(validate)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert validate.stdout.startswith("ok")


def test_init_again_is_idempotent_and_keeps_user_edits(git_repo: Path, cli: Cli) -> None:
    first = cli("-C", git_repo, "init", "--example", "house-prices")
    assert first.returncode == 0, first.stdout + first.stderr
    usecase = git_repo / "usecases" / "house-prices.yaml"
    edited = usecase.read_bytes().replace(b"learning_rate: 0.1,", b"learning_rate: 0.07,")
    edited += b"# my own note\n"
    usecase.write_bytes(edited)
    (git_repo / ".gitignore").write_text(
        (git_repo / ".gitignore").read_text("utf-8") + "scratch/\n", "utf-8"
    )
    before = _snapshot(git_repo)

    again = cli("-C", git_repo, "init", "--example", "house-prices")
    _no_traceback(again)
    assert again.returncode == 0, again.stdout + again.stderr
    assert usecase.read_bytes() == edited
    assert _snapshot(git_repo) == before
    assert "kept existing usecases/house-prices.yaml" in again.stdout
    gitignore = (git_repo / ".gitignore").read_text("utf-8").splitlines()
    assert gitignore.count(".mlopsctl/") == 1

    # a file the user deleted comes back; nothing else changes
    (git_repo / "mlopsctl.yaml").unlink()
    third = cli("-C", git_repo, "init", "--example", "house-prices")
    assert third.returncode == 0, third.stdout + third.stderr
    assert _snapshot(git_repo) == before


@pytest.mark.parametrize(
    ("name", "hint"),
    [("no-such-example", ""), ("breast-cancr", "did you mean 'breast-cancer'?")],
)
def test_unknown_example_is_a_clear_error(name: str, hint: str, git_repo: Path, cli: Cli) -> None:
    proc = cli("-C", git_repo, "init", "--example", name)
    _no_traceback(proc)
    assert proc.returncode == 1
    assert f"unknown example '{name}'" in proc.stderr
    for example in EXAMPLES:
        assert example in proc.stderr
    assert hint in proc.stderr
    assert not (git_repo / "mlopsctl.yaml").exists()
    assert not (git_repo / ".dvc").exists()


def test_init_outside_a_git_repository_creates_one(tmp_path: Path, cli: Cli) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    proc = cli("-C", root, "init", "--example", "breast-cancer")
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (root / ".git").is_dir()
    assert (root / ".dvc").is_dir()
    assert (root / "usecases" / "breast-cancer.yaml").is_file()
    validate = cli("-C", root, "validate")
    assert validate.returncode == 0, validate.stdout + validate.stderr


def test_init_default_example(git_repo: Path, cli: Cli) -> None:
    proc = cli("-C", git_repo, "init")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (git_repo / "usecases" / "breast-cancer.yaml").is_file()


def test_init_in_a_subdirectory_of_a_git_repository_is_a_clear_error(
    git_repo: Path, cli: Cli
) -> None:
    sub = git_repo / "ml"
    sub.mkdir()
    proc = cli("-C", sub, "init")
    _no_traceback(proc)
    assert proc.returncode == 1
    assert "run `mlopsctl init` at its top level" in proc.stderr
    assert not (sub / ".dvc").exists()
    assert not (sub / "mlopsctl.yaml").exists()
