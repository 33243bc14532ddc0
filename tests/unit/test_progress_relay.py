"""Storage mode's progress relay: a worker sends its stage's progress files, apply writes them
where its display reads them, and nothing else (names and documents come over the network)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlopsctl.execute import storage
from mlopsctl.report.progress import PROGRESS_DIR, Progress, read_all


def test_a_stages_progress_goes_from_its_workspace_to_the_repository(tmp_path: Path) -> None:
    ws, root = tmp_path / "ws", tmp_path / "repo"
    root.mkdir()
    sent: list[dict[str, Any]] = []

    def send(msg: dict[str, Any]) -> None:  # what the dask event carries, landed at once
        sent.append(json.loads(json.dumps(msg)))
        storage.land_progress(root, sent[-1])

    progress = Progress(ws, "churn/train", 40, "tuning", "fits")
    with storage.ProgressRelay(ws, send) as relay:
        progress.update(10)
        relay.relay()
        (snap,) = read_all(root)
        assert (snap.stage_id, snap.done, snap.total) == ("churn/train", 10, 40)
        relay.relay()  # unchanged: not sent again
        assert len(sent) == 1
        progress.update(40)
        relay.relay()
        assert read_all(root)[0].done == 40
        progress.close()  # the stage is done with it
    assert sent[-1] == {"file": "churn_train.json", "doc": None}
    assert read_all(root) == [] and not list((root / PROGRESS_DIR).glob("*"))


@pytest.mark.parametrize(
    "msg",
    [
        {"file": "../../escape.json", "doc": "{}"},
        {"file": "/tmp/abs.json", "doc": "{}"},
        {"file": "x.py", "doc": "{}"},
        {"file": "big.json", "doc": "x" * 5000},
        {"file": "notstr.json", "doc": 3},
        ["file", "doc"],
        None,
    ],
    ids=["dotdot", "absolute", "not-json", "too-big", "not-text", "not-a-dict", "none"],
)
def test_anything_but_a_small_progress_file_is_ignored(tmp_path: Path, msg: Any) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    storage.land_progress(root, msg)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_symlinked_progress_folder_is_not_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "repo", tmp_path / "outside"
    (root / ".mlopsctl").mkdir(parents=True)
    outside.mkdir()
    (root / PROGRESS_DIR).symlink_to(outside)  # a committed symlink leading out
    storage.land_progress(root, {"file": "churn_train.json", "doc": "{}"})
    assert list(outside.iterdir()) == []
