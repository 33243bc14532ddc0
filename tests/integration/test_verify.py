"""`mlopsctl verify [REV]`: real git, real DVC, a local-directory remote."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ENV, dvc, edit, git, mlopsctl

pytestmark = pytest.mark.slow

Applied = Callable[[str], Path]
STAGES = ("ingest", "validate", "split", "train", "evaluate", "gate")


def verify_json(root: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    proc = mlopsctl(root, "verify", "--format", "json", *args)
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def verdicts(doc: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["verdict"] for s in doc["stages"]}


def remote_object(root: Path, md5: str) -> Path:
    return root.parent / "remote" / "files" / "md5" / md5[:2] / md5[2:]


def locked_md5(root: Path, out: str) -> str:
    import yaml

    lock = yaml.safe_load((root / "dvc.lock").read_text("utf-8"))
    for entry in lock["stages"].values():
        for item in entry.get("outs", []):
            if item["path"] == out:
                return str(item["md5"])
    raise AssertionError(f"{out} not in dvc.lock")


def flip_a_byte(path: Path) -> None:
    os.chmod(path, 0o644)  # DVC leaves remote objects read-only
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file of the user's repository (working tree, index, DVC cache, .mlopsctl) with its
    size, mtime and hash; DVC's own runtime files (.dvc/tmp) excepted."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or rel.startswith((".dvc/tmp/", ".git/objects/", ".git/logs/")):
            continue
        st = path.stat()
        out[rel] = (st.st_size, st.st_mtime_ns, hashlib.md5(path.read_bytes()).hexdigest())
    return out


def worktrees(root: Path) -> list[str]:
    return [
        line.split(" ", 1)[1]
        for line in git(root, "worktree", "list", "--porcelain").splitlines()
        if line.startswith("worktree ")
    ]


def test_verify_head_reproduces_every_stage_and_touches_nothing(applied: Applied) -> None:
    root = applied("breast-cancer")
    (root / "notes.txt").write_text("an untracked file of the user\n")
    edit(root / "usecases/breast-cancer.yaml", "C: 1.0", "C: 0.5")  # uncommitted, not applied
    status = git(root, "status", "--porcelain")  # refreshes the index's stat data first
    before = snapshot(root)

    code, doc, err = verify_json(root)

    assert code == 0, err
    assert doc["ok"] is True
    assert doc["commit"] == git(root, "rev-parse", "HEAD").strip()
    assert doc["remote"] == "storage"
    assert verdicts(doc) == {f"breast-cancer/{s}": "reproduced" for s in STAGES}
    train = next(s for s in doc["stages"] if s["stage"] == "train")
    assert {o["path"] for o in train["outputs"]} >= {"artifacts/breast-cancer/model.skops"}
    assert all(o["match"] for o in train["outputs"])
    model = next(o for o in train["objects"] if o["path"].endswith("model.skops"))
    assert (model["where"], model["state"]) == ("remote", "ok")
    # progress says which stage runs
    assert "re-running breast-cancer/train" in err
    # the user's repository is as it was; no scratch worktree is left registered or on disk
    assert snapshot(root) == before
    assert git(root, "status", "--porcelain") == status
    assert worktrees(root) == [str(root)]
    assert not (root / ".git" / "worktrees").exists() or not any(
        (root / ".git" / "worktrees").iterdir()
    )

    text = mlopsctl(root, "verify", "-j", "2")
    assert text.returncode == 0, text.stderr
    assert "breast-cancer" in text.stdout
    assert "  train" in text.stdout and "reproduced" in text.stdout
    assert "Verify: 6 reproduced. HEAD is reproduced." in text.stdout


def test_a_tampered_model_object_on_the_remote_is_reported_corrupt(applied: Applied) -> None:
    root = applied("breast-cancer")
    md5 = locked_md5(root, "artifacts/breast-cancer/model.skops")
    flip_a_byte(remote_object(root, md5))

    code, doc, err = verify_json(root)

    assert code == 1, err
    got = verdicts(doc)
    # the re-run reproduces the model, so only the stored copy is wrong
    assert got["breast-cancer/train"] == "corrupt-output"
    assert all(v == "reproduced" for sid, v in got.items() if sid != "breast-cancer/train")
    train = next(s for s in doc["stages"] if s["stage"] == "train")
    bad = [o for o in train["objects"] if o["state"] != "ok"]
    assert [(o["path"], o["state"]) for o in bad] == [
        ("artifacts/breast-cancer/model.skops", "corrupt")
    ]
    assert bad[0]["actual"] and bad[0]["actual"] != md5
    assert "model.skops" in train["message"] and "altered after apply" in train["message"]
    text = mlopsctl(root, "verify")
    assert text.returncode == 1
    assert "corrupt-output" in text.stdout and "NOT reproduced" in text.stdout
    assert worktrees(root) == [str(root)]


def test_a_missing_remote_object_is_reported_missing(applied: Applied) -> None:
    root = applied("breast-cancer")
    remote_object(root, locked_md5(root, "artifacts/breast-cancer/test.parquet")).unlink()

    code, doc, err = verify_json(root)

    assert code == 1, err
    assert verdicts(doc)["breast-cancer/split"] == "missing-output"
    split = next(s for s in doc["stages"] if s["stage"] == "split")
    assert "test.parquet" in split["message"] and "missing" in split["message"]
    assert worktrees(root) == [str(root)]


def test_a_tampered_or_missing_data_source_is_a_bad_input(applied: Applied) -> None:
    """house-prices reads data/houses.csv, tracked by DVC: its object on the remote is an input."""
    root = applied("house-prices")
    md5 = (root / "data/houses.csv.dvc").read_text().split("md5: ")[1].split()[0]
    obj = remote_object(root, md5)
    original = obj.read_bytes()
    flip_a_byte(obj)

    code, doc, err = verify_json(root)

    assert code == 1, err
    got = verdicts(doc)
    assert got["house-prices/ingest"] == "corrupt-input"
    assert {got[f"house-prices/{s}"] for s in STAGES[1:]} == {"blocked"}
    ingest = doc["stages"][0]
    assert "data/houses.csv" in ingest["message"]
    assert [o["state"] for o in ingest["objects"] if o["role"] == "input"] == ["corrupt"]

    obj.unlink()
    code, doc, err = verify_json(root)
    assert code == 1, err
    assert verdicts(doc)["house-prices/ingest"] == "missing-input"

    obj.write_bytes(original)  # the remote whole again: everything reproduces
    code, doc, err = verify_json(root)
    assert code == 0, err
    assert set(verdicts(doc).values()) == {"reproduced"}


def test_verify_an_older_revision_uses_that_revision(applied: Applied) -> None:
    root = applied("breast-cancer")
    old_lock = (root / "dvc.lock").read_text()
    edit(root / "usecases/breast-cancer.yaml", "C: 1.0", "C: 0.05")
    mlopsctl(root, "apply", check=True)
    assert (root / "dvc.lock").read_text() != old_lock
    new_lock = (root / "dvc.lock").read_text()

    code, doc, err = verify_json(root, "HEAD~1")

    assert code == 0, err
    assert doc["commit"] == git(root, "rev-parse", "HEAD~1").strip()
    assert set(verdicts(doc).values()) == {"reproduced"}
    # HEAD~1's model, not the one in the working tree
    train = next(s for s in doc["stages"] if s["stage"] == "train")
    model = next(o for o in train["outputs"] if o["path"].endswith("model.skops"))
    assert model["recorded"] != locked_md5(root, "artifacts/breast-cancer/model.skops")
    assert (root / "dvc.lock").read_text() == new_lock
    assert git(root, "status", "--porcelain") == ""


def test_the_remote_of_the_real_repository_is_used(applied: Applied) -> None:
    """The committed config names a remote that does not exist; .dvc/config.local of the real
    repository names the right one with a URL relative to the config file."""
    root = applied("breast-cancer")
    dvc(root, "remote", "modify", "storage", "url", str(root.parent / "gone"))
    git(root, "commit", "-q", "-am", "a committed remote URL that leads nowhere")
    (root / ".dvc" / "config.local").write_text("['remote \"storage\"']\n    url = ../../remote\n")

    code, doc, err = verify_json(root)

    assert code == 0, err
    assert set(verdicts(doc).values()) == {"reproduced"}


def test_nondeterministic_stages_within_the_tolerance(applied: Applied) -> None:
    """A custom stage writes a score with noise in its 5th decimal: it never reproduces byte
    for byte. Without a tolerance that is 'diverged' (exit 1); with one, 'nondeterministic'
    (exit 0). (Train seeds every estimator, so a model that differs is judged in the unit
    tests, tests/unit/test_verify.py.)"""
    root = applied("breast-cancer")
    with (root / "usecases/breast-cancer.yaml").open("a") as fh:
        fh.write(
            "stages:\n"
            "  - name: score\n"
            "    cmd: >-\n"
            "      mkdir -p artifacts/extra && python -c 'import json, os;"
            ' json.dump({"score": 0.5 + int.from_bytes(os.urandom(2), "big") * 1e-9},'
            ' open("artifacts/extra/score.json", "w"))\'\n'
            "    outs: [artifacts/extra/score.json]\n"
        )
    mlopsctl(root, "apply", check=True)

    code, doc, err = verify_json(root)
    assert code == 1, err
    got = verdicts(doc)
    assert got.pop("breast-cancer/score") == "diverged"
    assert set(got.values()) == {"reproduced"}
    score = next(s for s in doc["stages"] if s["stage"] == "score")
    assert "score: 0.5" in score["message"] and "beyond 0" in score["message"]
    assert score["outputs"][0]["within_tolerance"] is False

    code, doc, err = verify_json(root, "--tolerance", "0.001")
    assert code == 0, err
    assert verdicts(doc)["breast-cancer/score"] == "nondeterministic"
    score = next(s for s in doc["stages"] if s["stage"] == "score")
    assert score["outputs"][0]["within_tolerance"] is True
    text = mlopsctl(root, "verify", "--tolerance", "0.001")
    assert text.returncode == 0
    assert "1 nondeterministic" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "unknown revision 'nope'"),
        (["--", "-x"], "is not a revision"),
        (["HEAD~2"], "has no dvc.lock"),
        (["-u", "nope"], "unknown use case 'nope'"),
    ],
)
def test_a_bad_revision_is_one_line(applied: Applied, args: list[str], message: str) -> None:
    root = applied("breast-cancer")
    proc = mlopsctl(root, "verify", *args)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert worktrees(root) == [str(root)]


def test_no_remote_or_an_unreachable_remote_is_one_line(applied: Applied) -> None:
    root = applied("breast-cancer")
    dvc(root, "remote", "modify", "storage", "url", str(root.parent / "gone"))
    proc = mlopsctl(root, "verify")
    assert proc.returncode == 1
    assert "cannot be reached" in proc.stderr and proc.stderr.count("error:") == 1
    assert worktrees(root) == [str(root)]

    dvc(root, "remote", "remove", "storage")
    proc = mlopsctl(root, "verify")
    assert proc.returncode == 1
    assert "no DVC remote is configured" in proc.stderr and proc.stderr.count("error:") == 1
    assert worktrees(root) == [str(root)]


def _with_custom_stage(root: Path, cmd: str) -> None:
    """Add a custom stage writing data/extra.out and apply it (in the real checkout, where
    `.git` is a directory; in verify's scratch worktree `.git` is a file)."""
    with (root / "usecases/breast-cancer.yaml").open("a") as fh:
        fh.write(f"stages:\n  - name: extra\n    cmd: {cmd}\n    outs: [data/extra.out]\n")
    mlopsctl(root, "apply", check=True)


def test_a_stage_that_fails_when_re_run_is_failed(applied: Applied) -> None:
    root = applied("breast-cancer")
    _with_custom_stage(
        root,
        "'test -d .git || { echo not the first checkout >&2; exit 4; };"
        " mkdir -p data && touch data/extra.out'",
    )
    code, doc, err = verify_json(root)
    assert code == 1, err
    got = verdicts(doc)
    assert got.pop("breast-cancer/extra") == "failed"
    assert set(got.values()) == {"reproduced"}
    extra = next(s for s in doc["stages"] if s["stage"] == "extra")
    assert "exited with 4" in extra["message"] and "not the first checkout" in extra["message"]
    assert worktrees(root) == [str(root)]


def _slow_when(flag: Path, marker: Path) -> str:
    return (
        f"'if [ -f .git ] && [ -f {flag} ]; then pwd > {marker}.tmp; echo $$ >> {marker}.tmp;"
        f" mv {marker}.tmp {marker}; sleep 120; fi; mkdir -p data && touch data/extra.out'"
    )


def _start_verify(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mlopsctl", "verify", *args],
        cwd=root,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 300  # a guard against a hang, not a timing assertion
    while not path.exists():
        assert time.monotonic() < deadline, f"timed out waiting for {path}"
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_interrupted_verify_removes_its_worktree(
    applied: Applied, tmp_path: Path, jobs: str
) -> None:
    root = applied("breast-cancer")
    flag, marker = tmp_path / "hang", tmp_path / "marker"
    flag.touch()
    _with_custom_stage(root, _slow_when(flag, marker))
    proc = _start_verify(root, "--jobs", jobs)
    _wait_for(marker)
    scratch, pid = marker.read_text().split()
    assert Path(scratch).is_dir() and len(worktrees(root)) == 2

    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)

    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and "interrupted" in err
    assert worktrees(root) == [str(root)]
    assert not Path(scratch).exists()
    deadline = time.monotonic() + 30
    while not _gone(int(pid)):  # the stage's command was stopped with verify
        assert time.monotonic() < deadline, "the stage's command outlived verify"
        time.sleep(0.05)


def test_the_worktree_of_a_killed_verify_is_removed_by_the_next(
    applied: Applied, tmp_path: Path
) -> None:
    root = applied("breast-cancer")
    flag, marker = tmp_path / "hang", tmp_path / "marker"
    flag.touch()
    _with_custom_stage(root, _slow_when(flag, marker))
    proc = _start_verify(root, "--jobs", "1")
    _wait_for(marker)
    scratch = Path(marker.read_text().split()[0])
    proc.kill()  # SIGKILL: no cleanup at all
    proc.communicate(timeout=60)
    assert len(worktrees(root)) == 2 and scratch.exists()

    flag.unlink()
    code, doc, err = verify_json(root)

    assert code == 0, err
    assert set(verdicts(doc).values()) == {"reproduced"}
    assert worktrees(root) == [str(root)]
    assert not scratch.exists()


def test_a_folder_output_is_checked_file_by_file(applied: Applied) -> None:
    root = applied("breast-cancer")
    _with_custom_stage(
        root,
        "mkdir -p data/extra.out/sub && echo 1 > data/extra.out/a.txt"
        " && echo 2 > data/extra.out/sub/b.txt",
    )
    md5 = locked_md5(root, "data/extra.out")
    assert md5.endswith(".dir")
    code, doc, err = verify_json(root)
    assert code == 0, err
    extra = next(s for s in doc["stages"] if s["stage"] == "extra")
    assert extra["verdict"] == "reproduced"
    assert [(o["path"], o["state"]) for o in extra["objects"]] == [
        ("data/extra.out", "ok"),
        ("data/extra.out/a.txt", "ok"),
        ("data/extra.out/sub/b.txt", "ok"),
    ]

    inner = next(o for o in extra["objects"] if o["path"].endswith("b.txt"))
    flip_a_byte(remote_object(root, inner["md5"]))
    code, doc, err = verify_json(root)
    assert code == 1, err
    extra = next(s for s in doc["stages"] if s["stage"] == "extra")
    assert extra["verdict"] == "corrupt-output"
    assert "data/extra.out/sub/b.txt" in extra["message"]
