"""dvc.lock is written by one writer, DVC's own YAML 1.2 serialiser, whole and then renamed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlopsctl import fault
from mlopsctl.errors import StateError
from mlopsctl.integrations import dvc as dvc_int
from mlopsctl.plan.state import read_state

from .conftest import dvc

DVC_YAML = """\
stages:
  a:
    cmd: echo a > a.txt
    params:
    - usecases/x.yaml:
      - data.join
    outs:
    - a.txt
  b:
    cmd: echo b > b.txt
    outs:
    - b.txt
"""

LOCK = """\
schema: '2.0'
stages:
  a:
    cmd: echo a > a.txt
    params:
      usecases/x.yaml:
        data.join:
        - left: customers
          right: regions
          on: region_id
          how: left
          flag: yes
    outs:
    - path: a.txt
      hash: md5
      md5: 60b725f10c9c85c70d97880dfe8191b3
      size: 2
  b:
    cmd: echo b > b.txt
    outs:
    - path: b.txt
      hash: md5
      md5: 3b5d5c3712955042212316173ccf37be
      size: 2
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    dvc(root, "init", "--no-scm", "-q")
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "dvc.lock").write_text(LOCK)
    (root / "a.txt").write_text("a\n")
    (root / "b.txt").write_text("b\n")
    (root / "usecases").mkdir()
    (root / "usecases/x.yaml").write_text(
        "data:\n  join:\n  - {left: customers, right: regions, on: region_id, how: left,"
        " flag: yes}\n"
    )
    return root


def test_removing_a_stage_keeps_yaml_12_keys_and_values_of_the_others(repo: Path) -> None:
    before = read_state(repo).get("a")
    assert before is not None
    dvc_int.record(repo, [], removed=["b"])
    text = (repo / "dvc.lock").read_text()
    assert "on: region_id" in text and "flag: yes" in text  # PyYAML wrote `true: region_id`
    assert "true:" not in text and "\n  b:" not in text
    after = read_state(repo)
    assert set(after.stages) == {"a"}
    assert after.get("a") == before  # the planner sees no param change
    assert "changed params" not in dvc(repo, "status", "a").stdout  # DVC reads it the same way


def test_recording_rewrites_the_lock_through_a_rename(repo: Path) -> None:
    (repo / "a.txt").write_text("A\n")
    inode = os.stat(repo / "dvc.lock").st_ino
    dvc_int.record(repo, ["a"])
    assert os.stat(repo / "dvc.lock").st_ino != inode  # a new file, renamed over the old one
    assert read_state(repo).get("a").outs["a.txt"] != "60b725f10c9c85c70d97880dfe8191b3"
    assert not [p for p in repo.iterdir() if p.name.startswith(".dvc.lock.")]


def test_an_empty_lock_is_never_recorded_over(repo: Path) -> None:
    (repo / "dvc.lock").write_text("")
    with pytest.raises(StateError, match=r"git checkout -- dvc\.lock"):
        dvc_int.record(repo, ["a"])
    with pytest.raises(StateError, match=r"git checkout -- dvc\.lock"):
        read_state(repo)


def test_kill_points_are_inert_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(fault.ENV, raising=False)
    for name in fault.POINTS:
        fault.point(name)  # returns: nothing asked for it
    monkeypatch.setenv(fault.ENV, "commit:3")
    fault.point("push")  # another point: not counted
    fault.point("commit")
    fault.point("commit")  # the second of three: still alive


def test_one_record_parses_a_shared_params_file_once(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every built-in stage of a use case names the use-case file: DVC parsed it once per stage
    (repo / "dvc.yaml").write_text(
        DVC_YAML + "  c:\n    cmd: echo c > c.txt\n    params:\n    - usecases/x.yaml:\n"
        "      - data.join\n    outs:\n    - c.txt\n"
    )
    (repo / "c.txt").write_text("c\n")
    from dvc.dependency import param

    parsed: list[str] = []
    real = param.load_path

    def counting(fs_path: str, fs: object, **kwargs: object) -> object:
        parsed.append(os.path.basename(fs_path))
        return real(fs_path, fs, **kwargs)

    monkeypatch.setattr(param, "load_path", counting)
    dvc_int.record(repo, ["a", "c"])
    assert parsed.count("x.yaml") == 1
    state = read_state(repo)
    assert state.get("a").params == state.get("c").params != {}
    assert "changed params" not in dvc(repo, "status", "a", "c").stdout
