"""The dask executor against a real dask.distributed LocalCluster (2 worker processes).

The cluster runs in this test process (module-scoped, closed at the end with its worker
processes); the CLI under test connects to its address from a subprocess, as `mlopsctl apply`
on a laptop connects to a team's scheduler.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlopsctl.compile.layout import UseCasePaths
from mlopsctl.execute.dask_executor import running_stages, stopped_stages
from mlopsctl.execute.task import cores

from .conftest import ENV, edit, git, make_project, mlopsctl
from .test_progress import TUNING

distributed = pytest.importorskip("distributed")

EXAMPLES = ("breast-cancer", "house-prices")
LOCAL = "  executor: local\n"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A LocalCluster of two single-threaded worker processes; no process outlives the module."""
    lc = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address="127.0.0.1:0"
    )
    client = distributed.Client(lc)
    pids = set(client.run(os.getpid).values())
    try:
        yield client
    finally:
        pids |= set(_worker_pids(client))
        client.close()
        lc.close()
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in pids if _alive(p)], "LocalCluster left worker processes behind"


def _worker_pids(client: Any) -> list[int]:
    try:
        return list(client.run(os.getpid).values())
    except Exception:  # a worker restarting
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of ours counts as gone
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def use_dask(root: Path, usecase: str, address: str) -> None:
    """Point *usecase*'s infra at the dask scheduler *address*."""
    edit(
        root / "usecases" / f"{usecase}.yaml",
        LOCAL,
        f'  executor: dask\n  dask: {{scheduler: "{address}"}}\n',
    )
    git(root, "commit", "-q", "-am", f"{usecase} on dask")


def closed_port() -> str:
    """The address of a port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def outputs(root: Path, usecase: str) -> dict[str, str]:
    files = [
        f"artifacts/{usecase}/model.skops",
        f"reports/{usecase}/metrics.json",
        f"reports/{usecase}/training.json",
    ]
    return {rel: md5(root / rel) for rel in files}


def assert_consistent(root: Path) -> None:
    """dvc.lock, the workspace and git agree: nothing to apply, nothing uncommitted."""
    proc = mlopsctl(root, "plan", "--detailed-exitcode")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert git(root, "status", "--porcelain") == ""
    assert not (root / ".mlopsctl" / "journal.jsonl").exists()


# --- default run ------------------------------------------------------------------------------


def refused_with_a_faulty_worker(
    cluster: Any, root: Path, fault: str, reset: str
) -> tuple[str, str]:
    """`apply --force` after *fault* (Python source) ran on one worker; *reset* on every worker
    after. The refusal's common shape is checked here: exit 1, one error line, nothing ran or
    changed in git. Returns (the faulty worker, the error line)."""
    worker = sorted(cluster.scheduler_info()["workers"])[0]
    cluster.run(exec, fault, workers=[worker])
    try:
        proc = mlopsctl(root, "apply", "--force")
    finally:
        cluster.run(exec, reset)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1, proc.stderr
    assert "ran" not in proc.stdout
    assert git(root, "status", "--porcelain") == ""  # nothing ran, nothing recorded
    return worker, errors[0]


def test_workers_with_other_versions_are_refused(
    cluster: Any, tmp_path: Path, applied: Callable[[str], Path]
) -> None:
    root = applied("breast-cancer")
    use_dask(root, "breast-cancer", cluster.scheduler.address)
    # a fault no real setup lets a test cause: one worker reports another scikit-learn
    module = "from mlopsctl.compile.environment import environment; "
    fake = module + "environment()['scikit-learn'] = '0.0.1'"
    worker, error = refused_with_a_faulty_worker(
        cluster, root, fake, module + "environment.cache_clear()"
    )
    from mlopsctl.compile.environment import environment

    assert "scikit-learn" in error and "0.0.1" in error, error
    assert environment()["scikit-learn"] in error and worker in error, error


#: faults no real setup lets a test cause: one worker has another build of mlopsctl on disk, or
#: imported mlopsctl before its files changed (an upgrade it kept running through)
OTHER_BUILD = (
    "import mlopsctl.execute.dask_executor as d; d._real = d.code_state; "
    "d.code_state = lambda: ('0' * 64, [])"
)
OUTLIVED_UPGRADE = "import mlopsctl; mlopsctl._real, mlopsctl.IMPORTED_AT = mlopsctl.IMPORTED_AT, 0"
RESET_CODE = (
    "import mlopsctl, mlopsctl.execute.dask_executor as d\n"
    "d.code_state = getattr(d, '_real', d.code_state)\n"
    "mlopsctl.IMPORTED_AT = getattr(mlopsctl, '_real', mlopsctl.IMPORTED_AT)"
)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (OTHER_BUILD, "has other mlopsctl code (sha256 000000000000 there"),
        (OUTLIVED_UPGRADE, "imported mlopsctl before"),
    ],
    ids=["other-build", "outlived-upgrade"],
)
def test_workers_with_other_mlopsctl_code_are_refused(
    cluster: Any, applied: Callable[[str], Path], fault: str, expected: str
) -> None:
    root = applied("breast-cancer")
    use_dask(root, "breast-cancer", cluster.scheduler.address)
    worker, error = refused_with_a_faulty_worker(cluster, root, fault, RESET_CODE)
    assert "do not run this apply's mlopsctl code" in error, error
    assert f"{worker} {expected}" in error, error
    others = sorted(cluster.scheduler_info()["workers"])[1:]
    assert not any(w in error for w in others), error  # the healthy worker is not named


def test_workers_that_do_not_see_the_repository_are_refused(
    cluster: Any, applied: Callable[[str], Path]
) -> None:
    root = applied("breast-cancer")
    use_dask(root, "breast-cancer", cluster.scheduler.address)
    # the fault: one worker on another machine, without the shared file system (its check of
    # the token file fails as a missing mount would make it fail)
    module = "import mlopsctl.execute.dask_executor as d; "
    blind = module + "d._sees, d.sees_token = d.sees_token, lambda p, t: 'cannot read ' + p"
    reset = module + "d.sees_token = getattr(d, '_sees', d.sees_token)"
    worker, error = refused_with_a_faulty_worker(cluster, root, blind, reset)
    assert "do not see this repository" in error, error
    assert worker in error and str(root) in error, error
    assert not list((root / ".mlopsctl").glob("dask-check-*"))  # the token file is gone


def test_unreachable_scheduler_is_one_error_before_any_stage(tmp_path: Path) -> None:
    root = make_project(tmp_path, "breast-cancer", remote=False)
    address = closed_port()
    use_dask(root, "breast-cancer", address)
    proc = mlopsctl(root, "apply")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: cannot reach the dask scheduler")
    assert address in errors[0], errors
    assert proc.stdout.strip() == ""  # not one stage started
    assert not (root / "dvc.lock").exists()
    assert not (root / "reports").exists()


def test_dask_missing_names_the_extra(tmp_path: Path) -> None:
    """Without dask installed, choosing it is one error that says how to install it."""
    root = make_project(tmp_path, "breast-cancer", remote=False)
    use_dask(root, "breast-cancer", closed_port())
    # the fault: an environment without dask.distributed (a stand-in that fails to import)
    fake = tmp_path / "no-dask" / "distributed"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'distributed'\", name='distributed')\n"
    )
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(fake.parent), ENV.get("PYTHONPATH", "")])}
    proc = mlopsctl(root, "apply", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and "pip install 'mlopsctl[dask]'" in errors[0], proc.stderr
    assert not (root / "dvc.lock").exists()


# --- slow: whole applies through the cluster ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES)
def test_apply_on_dask_is_byte_identical_to_local(
    example: str, cluster: Any, applied: Callable[[str], Path]
) -> None:
    root = applied(example)  # applied by the local executor
    local = outputs(root, example)
    lock = (root / "dvc.lock").read_bytes()
    address = cluster.scheduler.address
    # every core wanted: each task gets its share of the host's cores, never more
    edit(root / "usecases" / f"{example}.yaml", "  n_jobs: 1", "  n_jobs: -1")
    use_dask(root, example, address)

    plan = json.loads(mlopsctl(root, "plan", "--format", "json", "--force", check=True).stdout)
    assert {s.get("runs_on") for s in plan["stages"]} == {f"dask {address}"}
    assert f"{example} (on dask {address})" in mlopsctl(root, "plan", "--force").stdout

    proc = mlopsctl(root, "apply", "--force", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stages = json.loads(proc.stdout)["stages"]
    assert stages and all(s["status"] == "ran" for s in stages), stages
    # two single-threaded workers on this host: workers x threads x each task's threads <= cores
    share = max(1, cores() // 2)
    assert {s["summary"]["threads"] for s in stages if "threads" in s["summary"]} == {share}
    assert outputs(root, example) == local
    assert (root / "dvc.lock").read_bytes() == lock
    assert_consistent(root)
    assert not list((root / ".mlopsctl" / "tmp").glob("*"))  # every staging dir landed or went


@pytest.mark.slow
def test_executor_local_overrides_the_spec(applied: Callable[[str], Path]) -> None:
    root = applied("breast-cancer")
    before = outputs(root, "breast-cancer")
    use_dask(root, "breast-cancer", closed_port())  # would fail if apply went to it
    proc = mlopsctl(root, "apply", "--force", "--executor", "local")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outputs(root, "breast-cancer") == before
    assert_consistent(root)


#: house-prices' grid, widened: a train of many gradient-boosting fits, long enough to be
#: killed in the middle, its CV fits spread over the cluster by joblib's dask backend
GRID = ("learning_rate: [0.05, 0.1]", "learning_rate: [0.03, 0.05, 0.07, 0.1, 0.15, 0.2]")


def _tuned_on_dask(
    applied: Callable[[str], Path], cluster: Any, storage: Path | None = None
) -> Path:
    """house-prices, applied, then with the widened grid and its stages on *cluster* (through
    the fsspec URL of *storage* when given)."""
    root = applied("house-prices")
    edit(root / "usecases" / "house-prices.yaml", *GRID)
    if storage is None:
        use_dask(root, "house-prices", cluster.scheduler.address)
    else:
        use_storage(root, "house-prices", cluster.scheduler.address, storage.as_uri())
    return root


@pytest.mark.slow
@pytest.mark.parametrize("via", ["shared-path", "storage"])
def test_a_worker_killed_mid_stage_is_retried_and_nothing_half_lands(
    cluster: Any, applied: Callable[[str], Path], tmp_path: Path, via: str
) -> None:
    storage = tmp_path / "staging" if via == "storage" else None
    root = _tuned_on_dask(applied, cluster, storage)
    lock_before = (root / "dvc.lock").read_bytes()

    killed: list[str] = []

    def kill_the_train_worker() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            for worker, keys in cluster.processing().items():
                if any("_train-" in str(k) for k in keys):
                    time.sleep(0.5)  # in the middle of the stage
                    pid = cluster.run(os.getpid, workers=[worker])[worker]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(worker)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_train_worker)
    killer.start()
    proc = mlopsctl(root, "apply")
    killer.join()
    assert killed, "the train task was never seen running"
    out = proc.stdout + proc.stderr
    print(f"killed {killed[0]}: apply exited {proc.returncode}\n{out}")  # which path it took
    if proc.returncode == 0:  # retried on the other worker
        assert "house-prices/train: ran" in proc.stdout, out
    else:  # or a clear failure of that stage, recorded nowhere
        assert proc.returncode == 1 and "house-prices/train: failed" in proc.stdout, out
        assert (root / "dvc.lock").read_bytes() == lock_before
        assert "Traceback" not in proc.stderr
        mlopsctl(root, "apply", check=True)  # a plain re-apply finishes the work
    assert_consistent(root)
    training = json.loads((root / "reports" / "house-prices" / "training.json").read_text())
    assert training["tuning"]["candidates"] == 6
    if storage is not None:  # the model that landed is the one the (retried) worker uploaded
        model = root / "artifacts" / "house-prices" / "model.skops"
        assert _objects(storage)[md5(model)].read_bytes() == model.read_bytes()
        assert not list((root / ".mlopsctl" / "tmp").glob("*"))
    # the cluster is whole again for the next test (the nanny restarted the killed worker)
    cluster.wait_for_workers(2, timeout=60)


@pytest.mark.slow
def test_an_interrupt_cancels_the_tasks_and_closes_the_client(
    cluster: Any, applied: Callable[[str], Path]
) -> None:
    root = _tuned_on_dask(applied, cluster)
    lock_before = (root / "dvc.lock").read_bytes()
    head = git(root, "rev-parse", "HEAD")
    scheduler = cluster.cluster.scheduler  # the LocalCluster's scheduler, in this process
    clients_before = _clients(scheduler)

    proc = subprocess.Popen(
        [sys.executable, "-m", "mlopsctl", "apply"],
        cwd=root,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # running in a worker's thread, not only known to the scheduler (it may not have
        # reached a worker yet: dask would then just drop it, with nothing to stop)
        _wait_for(
            lambda: any("_train-" in k for ks in cluster.run(running_stages).values() for k in ks),
            "the train to run on a worker",
        )
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    assert (root / "dvc.lock").read_bytes() == lock_before
    assert git(root, "rev-parse", "HEAD") == head
    # the scheduler forgot apply's tasks and its client
    _wait_for(lambda: not _keys(scheduler, "mlopsctl-"), "the stage tasks to be released")
    _wait_for(lambda: _clients(scheduler) <= clients_before, "apply's client to close")
    # and the train that was running on a worker was stopped there, not left to run to its end
    _wait_for(
        lambda: any("_train-" in k for ks in cluster.run(stopped_stages).values() for k in ks),
        "the running train to be stopped on its worker",
    )
    mlopsctl(root, "apply", check=True)  # a plain re-apply finishes the work
    assert_consistent(root)


def _clients(scheduler: Any) -> set[str]:
    """The scheduler's clients but the workers' own (joblib's dask backend opens one in a worker
    that tunes, named ``Client-worker-...``; it stays with the worker)."""
    return {c for c in list(scheduler.clients) if not str(c).startswith("Client-worker-")}


def _keys(scheduler: Any, part: str) -> list[str]:
    return [str(k) for k in list(scheduler.tasks) if part in str(k)]


def _wait_for(check: Callable[[], Any], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# --- infra.dask.storage: inputs and outputs through an fsspec URL, no shared path ------------


def test_workers_that_cannot_read_the_storage_are_refused(
    cluster: Any, tmp_path: Path, applied: Callable[[str], Path]
) -> None:
    root = applied("breast-cancer")
    url = (tmp_path / "staging").as_uri()
    use_storage(root, "breast-cancer", cluster.scheduler.address, url)
    # the fault: one worker without credentials for the URL (its read of the token fails)
    module = "import mlopsctl.execute.storage as s; "
    blind = module + "s._sees, s.sees_storage = s.sees_storage, lambda u, p, t: 'access denied'"
    reset = module + "s.sees_storage = getattr(s, '_sees', s.sees_storage)"
    worker, error = refused_with_a_faulty_worker(cluster, root, blind, reset)
    assert "cannot read infra.dask.storage" in error, error
    assert worker in error and url in error and "access denied" in error, error
    assert not list((tmp_path / "staging" / "checks").glob("*"))  # the token object is gone


def use_storage(root: Path, usecase: str, address: str, storage: str) -> None:
    """Point *usecase*'s infra at the dask scheduler *address*, staging through *storage*."""
    edit(
        root / "usecases" / f"{usecase}.yaml",
        LOCAL,
        f'  executor: dask\n  dask: {{scheduler: "{address}", storage: "{storage}"}}\n',
    )
    git(root, "commit", "-q", "-am", f"{usecase} on dask via {storage}")


def _objects(storage: Path) -> dict[str, Path]:
    """The objects under *storage*: md5 -> file."""
    found = (storage / "objects").glob("*/*")
    return {p.parent.name + p.name: p for p in found if ".tmp-" not in p.name}


def test_apply_via_storage_is_byte_identical_to_local(
    cluster: Any, tmp_path: Path, applied: Callable[[str], Path]
) -> None:
    root = applied("breast-cancer")  # applied by the local executor
    local = outputs(root, "breast-cancer")
    lock = (root / "dvc.lock").read_bytes()
    storage = tmp_path / "staging"  # beside the repository, not in it
    use_storage(root, "breast-cancer", cluster.scheduler.address, storage.as_uri())
    # the plan tells a reviewer where the inputs will be uploaded
    where = f"dask {cluster.scheduler.address} via {storage.as_uri()}"
    assert f"breast-cancer (on {where})" in mlopsctl(root, "plan", "--force").stdout

    proc = mlopsctl(root, "apply", "--force", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stages = json.loads(proc.stdout)["stages"]
    assert stages and all(s["status"] == "ran" for s in stages), stages
    assert outputs(root, "breast-cancer") == local
    assert (root / "dvc.lock").read_bytes() == lock
    assert_consistent(root)
    # every input and output went through the storage, content-addressed by its md5
    objects = _objects(storage)
    for rel, digest in local.items():
        assert objects[digest].read_bytes() == (root / rel).read_bytes(), rel
    snapshot = UseCasePaths("breast-cancer").snapshot  # ingest's output, validate's input
    assert md5(root / snapshot) in objects
    assert not list((storage / "checks").glob("*"))  # the start-up token is gone
    assert not list((root / ".mlopsctl" / "tmp").glob("*"))


def test_a_storage_worker_never_touches_the_repository(
    cluster: Any, tmp_path: Path, applied: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlopsctl.compile.graph import compile_usecase
    from mlopsctl.execute import storage as staging
    from mlopsctl.execute.dask_executor import run_on_worker
    from mlopsctl.execute.task import StageJob, run_job
    from mlopsctl.plan.hashing import HashCache
    from mlopsctl.spec.loader import load_project

    root = applied("breast-cancer")
    (ucf,) = load_project(root).usecases
    stages = {st.name: st for st in compile_usecase(ucf)}
    store = staging.Storage((tmp_path / "staging").as_uri())
    here = StageJob(str(root), stages["split"], ucf.spec)
    mlopsctl(root, "plan")  # hashes the deps (this copy of the repository is new to its cache)
    hashes = HashCache(root)  # what apply does before it submits, with the plan's hash cache
    read: list[Path] = []  # a spy on the upload's own hashing
    monkeypatch.setattr(staging, "file_md5", lambda path: read.append(path) or md5(path))
    inputs = staging.upload_inputs(store, root, here, hashes)
    assert set(inputs) == set(stages["split"].deps)
    assert inputs == {rel: md5(root / rel) for rel in inputs}
    assert read == [] and hashes.hashed == []  # unchanged since the plan hashed them: not read
    # the worker gets the applying machine's paths, which do not exist where it runs
    gone = tmp_path / "not-here"
    job = StageJob(str(gone / "repo"), here.stage, here.usecase, staging=str(gone / "staging"))
    future = cluster.submit(run_on_worker, run_job, job, {}, store.url, inputs, pure=False)
    result = future.result(timeout=120)
    assert result.ok, result.message
    assert result.staged == "all" and set(result.outs) == set(stages["split"].outs)
    assert not gone.exists()
    # what it uploaded is the local run's split, byte for byte
    for rel, digest in result.outs.items():
        assert digest == md5(root / rel), rel
        assert Path(store.object_path(digest)).read_bytes() == (root / rel).read_bytes()


@contextlib.contextmanager
def on_workers(cluster: Any, fault: str, undo: str) -> Iterator[None]:
    """Within the block, every worker of *cluster* runs with the code *fault* executed (a fault
    injected in its modules); *undo* takes it back after, whatever happened."""
    cluster.run(exec, fault)
    try:
        yield
    finally:
        cluster.run(exec, undo)


#: the fault, on the workers: right after a worker uploaded evaluate's metrics, their object in
#: the storage is overwritten (a bit rot, a tampering writer), while the worker reports the md5
#: of what it wrote
CORRUPT = """
import mlopsctl.execute.storage as s
def _corrupting(store, source, ws, st, staged, _upload=s._upload_outputs):
    outs = _upload(store, source, ws, st, staged)
    for rel, digest in outs.items():
        if rel.endswith("/metrics.json"):
            store.fs.pipe_file(store.object_path(digest), b'{"roc_auc": 1.0}')
    return outs
s._upload, s._upload_outputs = s._upload_outputs, _corrupting
"""


def test_a_corrupted_output_in_storage_fails_the_stage_and_records_nothing(
    cluster: Any, tmp_path: Path, applied: Callable[[str], Path]
) -> None:
    root = applied("breast-cancer")
    storage = tmp_path / "staging"
    use_storage(root, "breast-cancer", cluster.scheduler.address, storage.as_uri())
    edit(root / "usecases" / "breast-cancer.yaml", "C: 1.0", "C: 0.05")  # new model, new metrics
    git(root, "commit", "-q", "-am", "C: 0.05")
    metrics = root / "reports" / "breast-cancer" / "metrics.json"
    before = metrics.read_bytes()
    undo = "import mlopsctl.execute.storage as s; s._upload_outputs = s._upload"
    with on_workers(cluster, CORRUPT, undo):
        proc = mlopsctl(root, "apply")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    line = next(ln for ln in proc.stdout.splitlines() if "breast-cancer/evaluate" in ln)
    assert "failed" in line and "corrupt" in out and "metrics.json" in out, out
    assert storage.as_uri() in out, out
    # nothing of evaluate landed or was recorded: the workspace and dvc.lock keep the old metrics
    assert metrics.read_bytes() == before
    assert md5(metrics) in (root / "dvc.lock").read_text()
    assert not list((root / ".mlopsctl" / "tmp").glob("*"))
    # the corrupt object was dropped: a plain re-apply uploads it afresh and finishes the work
    mlopsctl(root, "apply", check=True)
    assert_consistent(root)


def test_a_storage_url_is_resolved_or_refused_before_any_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlopsctl.errors import MlopsctlError
    from mlopsctl.execute.storage import resolve_storage

    monkeypatch.setenv("STAGING_BUCKET", "team-bucket")
    assert resolve_storage("s3://${env:STAGING_BUCKET}/x") == "s3://team-bucket/x"
    assert resolve_storage("/mnt/staging") == "/mnt/staging"  # a local path on every machine
    monkeypatch.delenv("STAGING_BUCKET")
    with pytest.raises(MlopsctlError, match="STAGING_BUCKET is not set"):
        resolve_storage("s3://${env:STAGING_BUCKET}/x")
    with pytest.raises(MlopsctlError, match=r"neither a URL .* nor an absolute path"):
        resolve_storage("staging/objects")  # relative to each worker's directory: refused
    # through apply: one error, nothing ran
    root = make_project(tmp_path, "breast-cancer", remote=False)
    use_storage(root, "breast-cancer", closed_port(), "nosuchscheme://bucket/x")
    proc = mlopsctl(root, "apply")
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(errors) == 1, proc.stdout + proc.stderr
    assert "infra.dask.storage nosuchscheme://bucket/x" in errors[0], errors
    assert not (root / "dvc.lock").exists()


#: two custom stages: `extract` (a file dep -> a directory out) and `count` (that directory as
#: its dep); `extract` also checks that the repository is not there (only its declared deps are)
CUSTOM = """
stages:
  - name: extract
    cmd: >-
      test ! -e dvc.yaml && mkdir -p data/extra/sub
      && cp data/in.txt data/extra/sub/a.txt && echo extracted
    deps: [data/in.txt]
    outs: [data/extra]
  - name: count
    cmd: find data/extra -type f | sort > data/count.txt
    deps: [data/extra]
    outs: [data/count.txt]
"""


def test_custom_stages_and_deploy_via_storage_run_away_from_the_repository(
    cluster: Any, tmp_path: Path, applied: Callable[[str], Path]
) -> None:
    root = applied("breast-cancer")
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "in.txt").write_text("hello\n")
    uc = root / "usecases" / "breast-cancer.yaml"
    edit(uc, "  target: none", "  target: rest")  # a deploy stage: its bundle names the commit
    with uc.open("a") as fh:
        fh.write(CUSTOM)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "custom stages, a REST deployment")
    use_storage(root, "breast-cancer", cluster.scheduler.address, (tmp_path / "st").as_uri())
    head = git(root, "rev-parse", "HEAD").strip()
    proc = mlopsctl(root, "apply")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for stage in ("extract", "count", "deploy"):
        assert f"breast-cancer/{stage}: ran" in proc.stdout, proc.stdout
    bundle = root / UseCasePaths("breast-cancer").bundle_file("manifest.json")
    assert json.loads(bundle.read_text())["git_commit"] == head  # as a run in the repository
    assert (root / "data" / "extra" / "sub" / "a.txt").read_text() == "hello\n"
    assert (root / "data" / "count.txt").read_text() == "data/extra/sub/a.txt\n"
    log = root / ".mlopsctl" / "logs" / "breast-cancer_extract.log"
    assert log.read_text() == "extracted\n"  # the command's log came back from the worker
    assert_consistent(root)


def test_a_relative_sqlite_source_goes_to_a_storage_worker(
    cluster: Any, tmp_path: Path, applied: Callable[[str], Path]
) -> None:
    """The database of a `sqlite:///data/...` source is no dep of ingest (it is re-read every
    apply), yet a worker without the repository reads it: it is uploaded with the stage."""
    import sqlite3

    from sklearn.datasets import load_breast_cancer

    root = applied("breast-cancer")
    frame = load_breast_cancer(as_frame=True).frame
    (root / "data").mkdir(exist_ok=True)
    with sqlite3.connect(root / "data" / "cancer.sqlite") as conn:
        frame.to_sql("cancer", conn, index=False)
    uc = root / "usecases" / "breast-cancer.yaml"
    edit(
        uc,
        "cancer: {format: sklearn, name: breast_cancer}",
        'cancer: {format: sql, url: "sqlite:///data/cancer.sqlite", query: "SELECT * FROM cancer"}',
    )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the same rows from SQLite")
    store = tmp_path / "st"
    use_storage(root, "breast-cancer", cluster.scheduler.address, store.as_uri())
    proc = mlopsctl(root, "apply", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ingest = next(s for s in json.loads(proc.stdout)["stages"] if s["id"].endswith("/ingest"))
    assert ingest["status"] == "ran", ingest
    db = hashlib.md5((root / "data" / "cancer.sqlite").read_bytes()).hexdigest()
    assert (store / "objects" / db[:2] / db[2:]).is_file()  # it went through the storage
    assert "always runs" in mlopsctl(root, "plan").stdout  # a database: re-read every apply


# --- several clusters in one apply --------------------------------------------------------------


def test_use_cases_on_two_schedulers_and_the_local_pool_in_one_apply(
    cluster: Any, tmp_path: Path, applied: Callable[[str], Path]
) -> None:
    """breast-cancer on the module's cluster (shared path), a copy of it on a second cluster
    (through a storage URL), a third copy in the local pool: one apply, each where its spec says,
    the same model bytes from all three."""
    root = applied("breast-cancer")
    local = outputs(root, "breast-cancer")
    spec = (root / "usecases" / "breast-cancer.yaml").read_text("utf-8")
    for name in ("bc-second", "bc-local"):
        text = spec.replace("name: breast-cancer ", f"name: {name} ", 1)
        (root / "usecases" / f"{name}.yaml").write_text(text, "utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "two copies of breast-cancer")
    storage = (tmp_path / "staging").as_uri()
    use_dask(root, "breast-cancer", cluster.scheduler.address)
    with distributed.LocalCluster(
        n_workers=1, processes=True, threads_per_worker=1, dashboard_address="127.0.0.1:0"
    ) as second:
        use_storage(root, "bc-second", second.scheduler_address, storage)
        plan = json.loads(mlopsctl(root, "plan", "--force", "--json").stdout)
        where = {s["id"].split("/")[0]: s.get("runs_on", "") for s in plan["stages"]}
        assert where == {
            "breast-cancer": f"dask {cluster.scheduler.address}",
            "bc-second": f"dask {second.scheduler_address} via {storage}",
            "bc-local": "",
        }
        proc = mlopsctl(root, "apply", "--force", "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        stages = json.loads(proc.stdout)["stages"]
        assert {s["status"] for s in stages} == {"ran"}, stages
        assert {s["id"].split("/")[0] for s in stages} == set(where)
        # the second scheduler saw bc-second's stage tasks, and only those
        seen = {str(t[0]) for t in second.scheduler.transition_log}
        ours = {k.split("-", 1)[1].rsplit("-", 1)[0] for k in seen if k.startswith("mlopsctl-")}
        assert ours and all(k.startswith("bc-second_") for k in ours), ours
    for name in ("breast-cancer", "bc-second", "bc-local"):
        got = outputs(root, name)
        assert got[f"artifacts/{name}/model.skops"] == local["artifacts/breast-cancer/model.skops"]
    assert_consistent(root)


def test_tuning_progress_comes_back_from_a_storage_worker(
    cluster: Any, tmp_path: Path, applied: Callable[[str], Path]
) -> None:
    """The train runs in a worker's workspace, away from the repository: its fits done / total
    still reach apply's log (relayed as dask events), as on the local pool."""
    root = applied("breast-cancer")
    spec = root / "usecases" / "breast-cancer.yaml"
    edit(spec, "\n  preprocessing:", "\n" + TUNING + "  preprocessing:")
    use_storage(root, "breast-cancer", cluster.scheduler.address, (tmp_path / "s").as_uri())
    env = {**ENV, "MLOPSCTL_PROGRESS_INTERVAL": "0.1"}
    proc = mlopsctl(root, "apply", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = re.findall(r"^breast-cancer/train: tuning (\d+)/51 fits \((\d+)%\)", proc.stdout, re.M)
    assert lines, proc.stdout
    done = [int(d) for d, _pct in lines]
    assert done == sorted(done) and all(0 <= d <= 51 for d in done)
    assert proc.stdout.index("tuning") < proc.stdout.index("breast-cancer/train: ran")
    assert not (root / ".mlopsctl" / "progress").exists()


#: the fault, on the workers: the first object a worker downloads has expired (a lifecycle rule
#: of the object store, a cron job) after apply saw it in the storage and skipped its upload
EXPIRE = """
import mlopsctl.execute.storage as s
def _expired(self, md5, dest, _get=s.Storage.get, _s=s):
    if not getattr(_s, "_expired_once", False):
        _s._expired_once = True
        self.fs.rm_file(self.object_path(md5))
    return _get(self, md5, dest)
s._get, s.Storage.get = s.Storage.get, _expired
"""


def test_an_object_that_expires_during_an_apply_fails_its_stage_and_is_uploaded_again(
    cluster: Any, tmp_path: Path, applied: Callable[[str], Path]
) -> None:
    root = applied("breast-cancer")
    storage = tmp_path / "staging"
    use_storage(root, "breast-cancer", cluster.scheduler.address, storage.as_uri())
    mlopsctl(root, "apply", "--force", check=True)  # every object is in the storage now
    lock = (root / "dvc.lock").read_bytes()
    head = git(root, "rev-parse", "HEAD")
    undo = "import mlopsctl.execute.storage as s; s.Storage.get = s._get; s._expired_once = 0"
    with on_workers(cluster, EXPIRE, undo):
        proc = mlopsctl(root, "apply", "--force")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out
    assert "is gone from" in out and storage.as_uri() in out, out
    assert "the next apply uploads it again" in out, out
    assert (root / "dvc.lock").read_bytes() == lock  # the failed stage recorded nothing
    assert git(root, "rev-parse", "HEAD") == head
    # as it says: the next apply finds the object missing, uploads it and finishes
    mlopsctl(root, "apply", "--force", check=True)
    assert_consistent(root)
    assert not list((root / ".mlopsctl" / "tmp").glob("*"))
