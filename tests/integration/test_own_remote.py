"""A use case's own DVC remote (``infra.remote``): its artifacts and data go there, and only there.

Real git, real DVC, two local-directory remotes: the project's default (``storage``) and
``vault``, which one use case names.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.integration.conftest import dvc, edit, git, mlopsctl

UC = "usecases/house-prices.yaml"


def _objects(remote: Path) -> set[str]:
    """The md5s a DVC 3 remote (a local directory) holds."""
    base = remote / "files" / "md5"
    return {p.parent.name + p.name for p in base.glob("*/*")} if base.is_dir() else set()


def _outs_of(root: Path, stage: str) -> dict[str, str]:
    lock = yaml.safe_load((root / "dvc.lock").read_text("utf-8"))
    return {o["path"]: o["md5"] for o in lock["stages"][stage].get("outs", [])}


def _cached_outs(root: Path) -> dict[str, str]:
    """path -> md5 of every DVC-cached output (not ``cache: false``) that dvc.lock records."""
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text("utf-8"))
    out: dict[str, str] = {}
    for name, entry in pipeline["stages"].items():
        cached = set()
        for o in entry.get("outs", []):
            path, flags = next(iter(o.items())) if isinstance(o, dict) else (o, {})
            if flags.get("cache", True):
                cached.add(path)
        out.update({p: m for p, m in _outs_of(root, name).items() if p in cached})
    return out


def test_a_use_case_with_its_own_remote_pushes_there_and_only_there(
    applied: Callable[[str], Path], tmp_path: Path
) -> None:
    root = applied("house-prices")
    storage, vault = tmp_path / "remote", tmp_path / "vault"
    vault.mkdir()
    dvc(root, "remote", "add", "vault", str(vault))
    edit(root / UC, "  executor: local\n", "  executor: local\n  remote: vault\n")
    # the pull-request comment shows the new remote beside the move
    md = mlopsctl(root, "plan", "--format", "markdown", "--base", "HEAD", check=True).stdout
    assert "### DVC remotes changed on this branch" in md
    assert f"DVC remote 'vault' added: {vault}" in md
    git(root, "commit", "-q", "-am", "house-prices keeps its data and artifacts in vault")

    # no stage runs, but the plan says where the artifacts go (a reviewer must see it)
    assert "vault" not in mlopsctl(root, "validate").stderr
    plan = mlopsctl(root, "plan", "--detailed-exitcode")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    moved = "house-prices: artifacts and data go to DVC remote 'vault', not the project's"
    assert moved in plan.stdout
    assert "1 use case to move to another DVC remote" in plan.stdout
    planned = json.loads(mlopsctl(root, "plan", "--json").stdout)
    assert planned["remotes"] == [{"usecase": "house-prices", "old": "", "new": "vault"}]
    assert all(s["action"] == "up-to-date" for s in planned["stages"])
    assert moved in mlopsctl(root, "plan", "--format", "markdown").stdout

    proc = mlopsctl(root, "apply", check=True)
    assert "pushed" in proc.stdout + proc.stderr and "'vault'" in proc.stdout + proc.stderr
    subject = git(root, "log", "-1", "--format=%s").strip()
    assert subject == "mlopsctl apply: move house-prices to vault (no stage ran)", subject
    after = mlopsctl(root, "plan", "--detailed-exitcode")
    assert after.returncode == 0, after.stdout + after.stderr
    # DVC's own files name the remote: plain `dvc push` / `dvc pull` use it too
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text("utf-8"))
    train_outs = pipeline["stages"]["house-prices_train"]["outs"]
    flags = [next(iter(o.values())) for o in train_outs if isinstance(o, dict)]
    assert [f["remote"] for f in flags if f.get("cache", True)] == ["vault"] * len(
        [o for o in train_outs if isinstance(o, str) or next(iter(o.values())).get("cache", True)]
    )
    source = yaml.safe_load((root / "data/houses.csv.dvc").read_text("utf-8"))
    assert source["outs"][0]["remote"] == "vault"
    assert git(root, "status", "--porcelain") == ""  # the rewritten files are committed

    outs = _cached_outs(root)
    assert outs and set(outs.values()) <= _objects(vault)
    assert source["outs"][0]["md5"] in _objects(vault)
    status = mlopsctl(root, "status", "--remote")
    assert status.returncode == 0, status.stdout + status.stderr
    # ... and asks vault itself: an object gone from it is not pushed (DVC's own `status -c`
    # skips outputs that name a remote)
    path, md5 = next(iter(outs.items()))
    obj = vault / "files" / "md5" / md5[:2] / md5[2:]
    obj.rename(tmp_path / "away")
    status = mlopsctl(root, "status", "--remote")
    assert status.returncode == 1 and f"not on the remote: {path}" in status.stdout, status.stdout
    (tmp_path / "away").rename(obj)

    # a change that trains again: the new model goes to vault, never to the project's remote
    before_storage = _objects(storage)
    edit(root / UC, "max_iter: 200,", "max_iter: 150,")
    git(root, "commit", "-q", "-am", "fewer boosting rounds")
    mlopsctl(root, "apply", check=True)
    new = set(_cached_outs(root).values()) - before_storage
    assert new, "the retrain wrote no new object"
    assert new <= _objects(vault)
    assert _objects(storage) == before_storage

    # verify re-proves HEAD from the remotes: the new model exists only in vault
    proc = mlopsctl(root, "verify", "--format", "json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["ok"], proc.stdout + proc.stderr
    assert doc["remote"] == "storage, vault"
    assert {s["verdict"] for s in doc["stages"]} == {"reproduced"}
    train = next(s for s in doc["stages"] if s["stage"] == "train")
    model = next(o for o in train["objects"] if o["path"].endswith("model.skops"))
    assert (model["where"], model["state"], model["md5"] in new) == ("remote", "ok", True)

    # a fresh clone: plain `dvc pull` takes each output from its remote, and nothing is stale
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    dvc(clone, "pull", "-q")
    plan = mlopsctl(clone, "plan", "--detailed-exitcode", "--json")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert json.loads(plan.stdout)["stages"]

    # the remote gone from DVC's config (DVC then refuses every push and pull): validate warns,
    # status says why it cannot tell, apply refuses before running anything
    dvc(root, "remote", "remove", "vault")
    git(root, "commit", "-q", "-am", "no vault")
    shutil.rmtree(vault)
    for command in ("validate", "plan"):
        warned = mlopsctl(root, command)
        assert warned.returncode == 0
        assert "infra.remote: DVC remote 'vault' is not configured" in warned.stderr
    unknown = "DVC remote 'vault' (infra.remote of house-prices) is not configured"
    status = mlopsctl(root, "status", "--remote")
    assert unknown in status.stdout + status.stderr
    lock = (root / "dvc.lock").read_bytes()
    refused = mlopsctl(root, "apply", "--force")
    assert refused.returncode == 1 and unknown in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert (root / "dvc.lock").read_bytes() == lock
    assert _objects(storage) == before_storage
