"""read_json_object: the records status, versions, the model card and the commit message read
(gate verdicts, metrics, training records) count as absent unless they are what a stage writes."""

from __future__ import annotations

import os
from pathlib import Path

from mlopsctl.spec.paths import read_json_object


def test_a_regular_file_holding_an_object_is_read(tmp_path: Path) -> None:
    (tmp_path / "reports/uc").mkdir(parents=True)
    (tmp_path / "reports/uc/gate.json").write_text('{"passed": true}')
    assert read_json_object(tmp_path, "reports/uc/gate.json") == {"passed": True}
    assert read_json_object(str(tmp_path), "reports/uc/gate.json") == {"passed": True}


def test_what_a_pull_request_could_commit_instead_counts_as_absent(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "gate.json").write_text('{"passed": true}')
    root = tmp_path / "repo"
    (root / "reports").mkdir(parents=True)
    # a symlinked folder on the way out of the repository, and a symlink at the record itself
    (root / "reports/uc").symlink_to(outside)
    (root / "reports/link.json").symlink_to(outside / "gate.json")
    (root / "reports/inside.json").write_text('{"passed": true}')
    (root / "reports/alias.json").symlink_to("inside.json")  # stays inside, still not followed
    (root / "reports/list.json").write_text("[1, 2]")
    (root / "reports/torn.json").write_text('{"passed": tr')
    (root / "reports/dir.json").mkdir()
    os.mkfifo(root / "reports/fifo.json")  # opening it would block
    for rel in (
        "reports/uc/gate.json",
        "reports/link.json",
        "reports/alias.json",
        "reports/list.json",
        "reports/torn.json",
        "reports/dir.json",
        "reports/fifo.json",
        "reports/missing.json",
        "/etc/passwd",
        "../outside/gate.json",
    ):
        assert read_json_object(root, rel) is None, rel
    assert read_json_object(root, "reports/inside.json") == {"passed": True}


def test_a_record_larger_than_the_limit_counts_as_absent(tmp_path: Path) -> None:
    (tmp_path / "big.json").write_text('{"x": "' + "a" * 100 + '"}')
    assert read_json_object(tmp_path, "big.json", max_bytes=50) is None
    assert read_json_object(tmp_path, "big.json", max_bytes=200) == {"x": "a" * 100}
