"""dvc.lock is written by one writer, DVC's own YAML 1.2 serialiser, whole and then renamed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlopsctl import fault
from mlopsctl.errors import StateError
from mlopsctl.integrations import dvc as dvc_int
from mlopsctl.plan.state import read_state
from mlopsctl.spec.cache import stat_key

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


#: values that YAML 1.1 (PyYAML) and YAML 1.2 (ruamel, DVC) read differently, and others a
#: re-dump could change, as DVC writes them into dvc.lock (from the params file it parsed):
#: the entries of stages not recorded must come back byte for byte
TRICKY_PARAMS = (
    "octal: 0o17\nsexagesimal: 1:20\ndate: 2024-01-01\nsmall: 1.0e-07\nword: no\n"
    "empty: ''\ntilde: '~'\nmulti: \"two\\nlines\"\nunicode: \"\\xFCber\"\n"
    "big: 123456789012345678901234567890\nnumbery: '123'\nlist: [1, '2', null, true]\n"
)


def tricky_lock() -> str:
    from dvc.utils.serialize import dumps_yaml, parse_yaml, parse_yaml_for_update

    params = parse_yaml(TRICKY_PARAMS, "x.yaml")
    entry = {
        "cmd": "echo c > c.txt",
        "params": {"usecases/x.yaml": {"data.tricky": params}},
        "outs": [{"path": "c.txt", "hash": "md5", "md5": "0" * 32, "size": 2}],
    }
    data = parse_yaml_for_update(LOCK, "dvc.lock")
    data["stages"]["c"] = entry
    return str(dumps_yaml(data))


def test_recording_reads_the_lock_once_and_keeps_the_other_entries_byte_for_byte(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ruamel.yaml import YAML

    lock = tricky_lock()
    assert "octal: 15" in lock and "word: no" in lock and "'123'" in lock
    (repo / "dvc.lock").write_text(lock)
    parsed: list[str] = []
    real = YAML.load

    def counting(self: YAML, stream: object) -> object:
        parsed.append(str(stream).split("\n", 1)[0])
        return real(self, stream)  # type: ignore[arg-type]

    monkeypatch.setattr(YAML, "load", counting)
    (repo / "b.txt").write_text("B\n")
    dvc_int.record(repo, ["b"])
    assert parsed.count("schema: '2.0'") == 1  # loading the stages; the rewrite reuses it
    text = (repo / "dvc.lock").read_text()
    new_b = read_state(repo).get("b").outs["b.txt"]
    assert new_b != "3b5d5c3712955042212316173ccf37be"
    assert text == lock.replace("3b5d5c3712955042212316173ccf37be", new_b)


def test_a_lock_changed_after_loading_is_read_again(repo: Path) -> None:
    """The data loading parsed is used only while dvc.lock is the file it parsed."""
    stale = (stat_key(repo / "dvc.lock"), {"schema": "2.0", "stages": {"zzz": {}}})
    (repo / "dvc.lock").write_text(LOCK.replace("echo b > b.txt", "echo B > b.txt"))
    dvc_int._write_lock(repo, [], ["a"], stale)  # type: ignore[arg-type]
    text = (repo / "dvc.lock").read_text()
    assert "zzz" not in text and "echo B > b.txt" in text and "\n  a:" not in text


def test_an_output_git_tracks_is_refused(tmp_path: Path) -> None:
    """DVC will not cache a file git versions; mlopsctl reads git's index once per record."""
    import subprocess

    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    dvc(root, "init", "-q")
    (root / "dvc.yaml").write_text(
        DVC_YAML.split("  b:")[0].replace(
            "    params:\n    - usecases/x.yaml:\n      - data.join\n", ""
        )
    )
    (root / "a.txt").write_text("a\n")
    dvc_int.record(root, ["a"])  # not tracked by git: recorded
    assert read_state(root).get("a") is not None
    (root / ".gitignore").unlink()  # DVC ignored it for git; force it in
    subprocess.run(["git", "-C", str(root), "add", "-f", "a.txt"], check=True)
    (root / "a.txt").write_text("A\n")
    with pytest.raises(Exception, match=r"is already tracked by SCM"):
        dvc_int.record(root, ["a"])
