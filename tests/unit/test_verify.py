"""verify's judgement: numbers within a tolerance, and each stage's verdict from its outputs."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mlopsctl.compile.graph import Graph, Stage
from mlopsctl.gitops.remote_objects import ObjectCheck, tracked_sources
from mlopsctl.gitops.verify import (
    Verifier,
    VerifyResult,
    _Run,
    compare_json,
    number_holds,
)
from mlopsctl.plan.state import AppliedState, LockedStage
from mlopsctl.report.verify_view import verify_lines
from mlopsctl.results import Reporter


@pytest.mark.parametrize(
    ("old", "new", "tol", "holds"),
    [
        (0.95, 0.95, 0.0, True),
        (0.95, 0.951, 0.0, False),
        (0.95, 0.951, 0.001, True),
        (0.95, 0.9511, 0.001, False),
        (1000.0, 1009.0, 0.01, True),  # relative above 1: 1% of 1000
        (1000.0, 1011.0, 0.01, False),
        (-2.0, -2.03, 0.01, False),
        (math.nan, math.nan, 0.0, True),
        (math.nan, 0.5, 1.0, False),
    ],
)
def test_number_holds(old: float, new: float, tol: float, holds: bool) -> None:
    assert number_holds(old, new, tol) is holds


def test_compare_json_within_and_beyond() -> None:
    old = {"roc_auc": 0.95, "n_test": 114, "checks": [{"metric": "f1", "passed": True}]}
    assert compare_json(old, json.loads(json.dumps(old)), 0.0) == (True, [])
    new = {**old, "roc_auc": 0.952}
    holds, diffs = compare_json(old, new, 0.01)
    assert holds and diffs == ["roc_auc: 0.95 -> 0.952"]
    holds, diffs = compare_json(old, new, 0.001)
    assert not holds and diffs == ["roc_auc: 0.95 -> 0.952 (beyond 0.001)"]


@pytest.mark.parametrize(
    "new",
    [
        {"roc_auc": 0.95, "n_test": 114, "checks": [{"metric": "f1", "passed": False}]},
        {"roc_auc": 0.95, "n_test": 114, "checks": []},
        {"roc_auc": 0.95, "checks": [{"metric": "f1", "passed": True}]},
        {"roc_auc": "0.95", "n_test": 114, "checks": [{"metric": "f1", "passed": True}]},
        {"roc_auc": True, "n_test": 114, "checks": [{"metric": "f1", "passed": True}]},
    ],
)
def test_compare_json_structure_and_non_numbers_must_be_equal(new: Any) -> None:
    old = {"roc_auc": 0.95, "n_test": 114, "checks": [{"metric": "f1", "passed": True}]}
    holds, diffs = compare_json(old, new, 1.0)
    assert not holds and diffs


def test_tracked_sources_reads_every_dvc_file(tmp_path: Path) -> None:
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "houses.csv.dvc").write_text(
        "outs:\n- md5: 1aa4ce51121a0223267e2d171af0bd2c\n  size: 3\n  hash: md5\n"
        "  path: houses.csv\n"
    )
    (tmp_path / "data" / "raw.dvc").write_text(
        "outs:\n- md5: 0123456789abcdef0123456789abcdef.dir\n  path: raw\n"
    )
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "ignored.dvc").write_text("outs:\n- md5: x\n  path: y\n")
    assert tracked_sources(tmp_path) == {
        "data/houses.csv": "1aa4ce51121a0223267e2d171af0bd2c",
        "data/raw": "0123456789abcdef0123456789abcdef.dir",
    }


# --- a stage's verdict --------------------------------------------------------------------

MODEL, METRICS, SNAPSHOT = "artifacts/u/model.skops", "reports/u/metrics.json", "artifacts/u/s.pq"


def _verifier(tmp_path: Path, tolerance: float) -> Verifier:
    stages = {
        "u/ingest": Stage("u", "ingest", "ingest", "c", "u.yaml", outs=(SNAPSHOT,)),
        "u/train": Stage("u", "train", "train", "c", "u.yaml", deps=(SNAPSHOT,), outs=(MODEL,)),
        "u/evaluate": Stage(
            "u", "evaluate", "evaluate", "c", "u.yaml", deps=(MODEL,), metrics=(METRICS,)
        ),
    }
    graph = Graph(
        stages=stages,
        upstream={"u/ingest": (), "u/train": ("u/ingest",), "u/evaluate": ("u/train",)},
        order=("u/ingest", "u/train", "u/evaluate"),
    )
    state = AppliedState(
        {
            "u_ingest": LockedStage("u_ingest", "c", outs={SNAPSHOT: "s" * 32}),
            "u_train": LockedStage("u_train", "c", outs={MODEL: "m" * 32}),
            "u_evaluate": LockedStage("u_evaluate", "c", outs={METRICS: "r" * 32}),
        },
        b"",
    )
    project: Any = SimpleNamespace(root=tmp_path)
    verifier = Verifier(project, graph, state, None, tolerance, Reporter())  # type: ignore[arg-type]
    verifier.recorded_json[METRICS] = {"roc_auc": 0.95}
    return verifier


def _ran(verifier: Verifier, sid: str, outs: dict[str, str]) -> None:
    verifier.runs[sid] = _Run("", "", True, outs)


def _ran_pipeline(v: Verifier, snapshot: str, model: str, metrics: str) -> None:
    """ingest, train and evaluate re-ran, writing outputs of these md5s (one letter x 32)."""
    _ran(v, "u/ingest", {SNAPSHOT: snapshot * 32})
    _ran(v, "u/train", {MODEL: model * 32})
    _ran(v, "u/evaluate", {METRICS: metrics * 32})


def _metrics_now(tmp_path: Path, value: float) -> None:
    (tmp_path / "reports/u").mkdir(parents=True, exist_ok=True)
    (tmp_path / METRICS).write_text(json.dumps({"roc_auc": value}))


def test_everything_identical_is_reproduced(tmp_path: Path) -> None:
    v = _verifier(tmp_path, 0.0)
    _ran_pipeline(v, "s", "m", "r")
    assert [s.verdict for s in v.verdicts()] == ["reproduced"] * 3


def test_a_model_that_differs_with_metrics_within_the_tolerance(tmp_path: Path) -> None:
    v = _verifier(tmp_path, 0.01)
    _ran_pipeline(v, "s", "M", "R")
    _metrics_now(tmp_path, 0.955)
    got = {s.stage_id: s for s in v.verdicts()}
    assert got["u/train"].verdict == "nondeterministic"
    assert "metrics within tolerance 0.01" in got["u/train"].message
    assert got["u/evaluate"].verdict == "nondeterministic"
    assert "roc_auc: 0.95 -> 0.955" in got["u/evaluate"].message


def test_a_model_that_differs_with_metrics_beyond_the_tolerance(tmp_path: Path) -> None:
    v = _verifier(tmp_path, 0.001)
    _ran_pipeline(v, "s", "M", "R")
    _metrics_now(tmp_path, 0.955)
    got = {s.stage_id: s.verdict for s in v.verdicts()}
    assert got == {"u/ingest": "reproduced", "u/train": "diverged", "u/evaluate": "diverged"}


def test_a_model_that_differs_with_identical_metrics(tmp_path: Path) -> None:
    v = _verifier(tmp_path, 0.0)
    _ran_pipeline(v, "s", "M", "r")
    got = {s.stage_id: s.verdict for s in v.verdicts()}
    assert got["u/train"] == "nondeterministic"
    assert got["u/evaluate"] == "reproduced"


def test_data_that_differs_is_diverged_whatever_the_tolerance(tmp_path: Path) -> None:
    """Only a fitted model may differ with its metrics holding; a data snapshot must not."""
    v = _verifier(tmp_path, 1.0)
    _ran_pipeline(v, "S", "M", "r")
    got = {s.stage_id: s for s in v.verdicts()}
    assert got["u/ingest"].verdict == "diverged"
    assert "not derived from a fitted model" in got["u/ingest"].message
    assert got["u/train"].verdict == "nondeterministic"


def test_a_missing_metrics_rerun_leaves_a_differing_model_diverged(tmp_path: Path) -> None:
    v = _verifier(tmp_path, 1.0)
    _ran(v, "u/ingest", {SNAPSHOT: "s" * 32})
    _ran(v, "u/train", {MODEL: "M" * 32})
    v.runs["u/evaluate"] = _Run("failed", "boom")
    got = {s.stage_id: s for s in v.verdicts()}
    assert got["u/train"].verdict == "diverged"
    assert (got["u/evaluate"].verdict, got["u/evaluate"].message) == ("failed", "boom")


def test_a_bad_stored_output_outranks_a_reproduced_rerun(tmp_path: Path) -> None:
    v = _verifier(tmp_path, 0.0)
    _ran_pipeline(v, "s", "m", "r")
    v.outputs["u/train"] = [ObjectCheck(MODEL, "m" * 32, "output", "remote", "corrupt", "f" * 32)]
    got = {s.stage_id: s for s in v.verdicts()}
    assert got["u/train"].verdict == "corrupt-output"
    assert "altered after apply" in got["u/train"].message
    assert got["u/evaluate"].verdict == "reproduced"


def test_the_text_view_shows_each_stage_and_the_outcome(tmp_path: Path) -> None:
    v = _verifier(tmp_path, 0.0)
    _ran_pipeline(v, "s", "M", "r")
    result = VerifyResult("HEAD~1", "a" * 40, "storage", 0.0, v.verdicts(), ["u/deploy"])
    doc = result.to_dict()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["counts"] == {"nondeterministic": 1, "reproduced": 2} and doc["ok"] is True
    text = [line for _style, line in verify_lines(doc)]
    assert text[0] == "verify HEAD~1 (aaaaaaaaaa) against DVC remote 'storage'"
    assert text[1] == "u"
    assert text[3].split()[:2] == ["train", "nondeterministic"]
    assert "not run" in text[-2] and "u/deploy" in text[-2]
    assert text[-1] == "Verify: 2 reproduced, 1 nondeterministic. HEAD~1 is reproduced."


def test_lock_entries_this_version_does_not_compile_are_reported(tmp_path: Path) -> None:
    from mlopsctl.gitops.verify import _not_compiled

    v = _verifier(tmp_path, 0.0)
    state = AppliedState({**v.state.stages, "u_oldkind": LockedStage("u_oldkind", "c")}, b"")
    got = _not_compiled(v.graph, state, ())
    assert [(s.stage_id, s.verdict) for s in got] == [("u/oldkind", "failed")]
    assert _not_compiled(v.graph, state, ("other",)) == []


# --- the remote store, on a real DVC local remote ---------------------------------------------


def _store(tmp_path: Path, objects: dict[str, bytes]) -> Any:
    import hashlib

    from dvc_data.hashfile.db.local import LocalHashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    from mlopsctl.gitops.remote_objects import RemoteStore

    remote = tmp_path / "remote" / "files" / "md5"
    names = {}
    for key, data in objects.items():
        md5 = hashlib.md5(data).hexdigest() + (".dir" if key.endswith("/") else "")
        names[key] = md5
        path = remote / md5[:2] / md5[2:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    odb = LocalHashFileDB(LocalFileSystem(), str(remote))
    return RemoteStore([("storage", odb)], tmp_path / "fetched"), names, remote


def test_the_store_tells_ok_missing_and_corrupt_objects_apart(tmp_path: Path) -> None:
    store, names, remote = _store(tmp_path, {"a": b"alpha", "b": b"beta"})
    (remote / names["b"][:2] / names["b"][2:]).write_bytes(b"tampered")
    ok = store.check("data/a.csv", names["a"], "input")
    assert [(c.path, c.state) for c in ok] == [("data/a.csv", "ok")]
    bad = store.check("data/b.csv", names["b"], "input")[0]
    assert bad.state == "corrupt" and bad.actual not in ("", names["b"])
    gone = store.check("data/c.csv", "0" * 32, "output")[0]
    assert (gone.state, gone.role) == ("missing", "output")


def test_a_folder_object_is_checked_file_by_file_and_placed(tmp_path: Path) -> None:
    import hashlib

    one, two = b"1\n", b"2\n"
    listing = [
        {"md5": hashlib.md5(one).hexdigest(), "relpath": "one.txt"},
        {"md5": hashlib.md5(two).hexdigest(), "relpath": "sub/two.txt"},
    ]
    dir_bytes = json.dumps(listing, sort_keys=True).encode()
    store, names, _remote = _store(tmp_path, {"one": one, "two": two, "dir/": dir_bytes})
    checks = store.check("data/raw", names["dir/"], "input")
    assert [(c.path, c.state) for c in checks] == [
        ("data/raw", "ok"),
        ("data/raw/one.txt", "ok"),
        ("data/raw/sub/two.txt", "ok"),
    ]
    root = tmp_path / "checkout"
    root.mkdir()
    store.place(root, "data/raw", names["dir/"])
    assert (root / "data/raw/sub/two.txt").read_bytes() == two


def test_a_hostile_path_is_never_written_outside_the_checkout(tmp_path: Path) -> None:
    from mlopsctl.spec.paths import UnsafePathError

    store, names, _remote = _store(tmp_path, {"a": b"alpha"})
    root = tmp_path / "checkout"
    root.mkdir()
    assert store.check("../evil", names["a"], "input")[0].state == "ok"
    with pytest.raises(UnsafePathError):
        store.place(root, "../evil", names["a"])
    assert not (tmp_path / "evil").exists()


def test_several_remotes_are_asked_in_turn_and_a_good_copy_wins(tmp_path: Path) -> None:
    """The project's remote and a use case's own (``infra.remote``): an object is looked for
    in each; one corrupt copy does not hide a good one, and missing means missing in all."""
    from mlopsctl.gitops.remote_objects import RemoteStore

    first, names, remote1 = _store(tmp_path / "1", {"a": b"alpha", "b": b"beta"})
    second, _names, remote2 = _store(tmp_path / "2", {"b": b"beta", "c": b"gamma"})
    (remote1 / names["b"][:2] / names["b"][2:]).write_bytes(b"tampered")
    store = RemoteStore([*first.odbs, ("vault", second.odbs[0][1])], tmp_path / "fetched")
    assert store.name == "storage, vault"
    c = hashlib.md5(b"gamma").hexdigest()
    assert store.check("data/c.csv", c, "input")[0].state == "ok"  # only in the second
    assert store.check("data/b.csv", names["b"], "input")[0].state == "ok"  # good in the second
    assert store.local(names["b"]).read_bytes() == b"beta"
    (remote2 / names["b"][:2] / names["b"][2:]).write_bytes(b"tampered too")
    again = RemoteStore(store.odbs, tmp_path / "fetched-again")
    bad = again.check("data/b.csv", names["b"], "input")[0]
    assert bad.state == "corrupt"  # corrupt wherever it is found
    assert again.check("data/d.csv", "0" * 32, "input")[0].state == "missing"
