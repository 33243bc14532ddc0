"""Stage inputs and outputs through an fsspec URL: dask workers without the repository.

With ``infra.dask.storage: <URL>`` (``s3://bucket/prefix``, ``gs://...``, ``file:///mnt/x``,
any URL fsspec, and so DVC, can use) a worker never reads or writes the repository's path:

* the applying process uploads each file a stage reads (its deps, files of directory deps
  included) to ``<URL>/objects/<md5[:2]>/<md5[2:]>``, skipping objects already there;
* the worker (:func:`run_in_workspace`) makes a private temp workspace, downloads the inputs at
  their repo-relative paths, runs the stage there, uploads each output file the same way,
  removes the workspace and returns the stage's result, its ``outs`` naming every output file
  and its md5; meanwhile the stage's progress files (tuning's fits done / total) go to apply
  as dask events (:class:`ProgressRelay`, :func:`land_progress`);
* the applying process (:func:`fetch_outputs`) downloads those files into the staging
  directory it made and checks each md5 before ``task.land_staged`` lands them as usual.

Objects are content-addressed, so what a worker downloads is what apply hashed, and what lands
is what the worker wrote; a mismatch fails the stage. fsspec (a dependency of DVC) is imported
only here, when a use case names a storage URL: ``plan`` and ``validate`` never import it.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlopsctl.compile.layout import MONITORING_BREACH, UseCasePaths
from mlopsctl.errors import MlopsctlError
from mlopsctl.execute import task
from mlopsctl.execute.dask_executor import first_line, read_env_refs
from mlopsctl.fsutil import atomic_write
from mlopsctl.plan.hashing import HashCache, file_md5
from mlopsctl.report.progress import PROGRESS_DIR
from mlopsctl.spec.model import Source
from mlopsctl.spec.paths import inside_repo
from mlopsctl.stages.ingest import sqlite_file

OBJECTS = "objects"
CHECKS = "checks"
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_PROGRESS_FILE = re.compile(r"^[A-Za-z0-9_.-]+\.json$")
RELAY_EVERY = 0.5  # seconds: how often a worker looks for new progress of its stage


def resolve_storage(text: str) -> str:
    """``infra.dask.storage`` with its ``${env:NAME}`` references read (never written out).

    A URL without a scheme is a local path on every machine: it must be absolute (a relative
    one would name a different directory in each worker's working directory).
    """
    url = read_env_refs(text, "infra.dask.storage", "the storage URL").strip()
    if "://" not in url and not url.startswith("/"):
        raise MlopsctlError(
            f"infra.dask.storage: {text!r} is neither a URL (s3://bucket/prefix, "
            "file:///mnt/x, ...) nor an absolute path"
        )
    return url


class Storage:
    """The objects area (and start-up check tokens) below one fsspec URL."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") or url
        try:
            import fsspec

            self.fs, self.base = fsspec.core.url_to_fs(self.url)
        except (ImportError, ValueError) as exc:  # an unknown scheme, a missing s3fs/gcsfs...
            raise MlopsctlError(f"infra.dask.storage {self.url}: {first_line(exc)}") from None
        self.base = str(self.base).rstrip("/") or "/"

    def object_path(self, md5: str) -> str:
        if not _MD5.match(md5):
            raise MlopsctlError(f"not an md5: {md5!r}")
        return posixpath.join(self.base, OBJECTS, md5[:2], md5[2:])

    def put(self, local: Path, md5: str) -> None:
        """Upload *local* as the object *md5*, unless it is there already."""
        path = self.object_path(md5)
        if self.fs.exists(path):
            return
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        # a temp name, then a rename: a reader never sees half an object (on object stores an
        # upload is whole anyway)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        self.fs.put_file(str(local), tmp)
        self.fs.mv(tmp, path)

    def get(self, md5: str, dest: Path) -> None:
        """Download the object *md5* to *dest* (its parent exists)."""
        self.fs.get_file(self.object_path(md5), str(dest))

    def fetch(self, md5: str, dest: Path, what: str, then: str) -> None:
        """:meth:`get`, saying in one line when the object is gone (*what*: ``input data/x``;
        *then*: what follows from it). Objects are never deleted by mlopsctl, but an object
        store's expiry rule or a clean-up job may remove one between upload and download."""
        try:
            self.get(md5, dest)
        except FileNotFoundError:
            raise MlopsctlError(
                f"{what} (object {md5}) is gone from {self.url}: deleted or expired while apply "
                f"ran; {then}"
            ) from None

    def write_text(self, name: str, text: str) -> str:
        path = posixpath.join(self.base, CHECKS, name)
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with self.fs.open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path

    def read_text(self, path: str) -> str:
        with self.fs.open(path, "r", encoding="utf-8") as fh:
            return str(fh.read())

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)


# --- in the applying process ---------------------------------------------------------------


def stage_inputs(root: Path, job: task.StageJob) -> list[str]:
    """The repo-relative files *job* reads: its deps (each file of a directory dep) and what a
    stage kind reads beside them (train: the monitoring breach record it answers)."""
    st = job.stage
    rels = list(st.deps)
    if st.kind == "train":
        rels.append(UseCasePaths(job.usecase.name).monitoring_file(MONITORING_BREACH))
    elif st.kind == "ingest":
        rels.extend(sqlite_files(job.usecase.data.sources.values()))
    elif st.kind == "monitor" and job.usecase.monitoring is not None:
        rels.extend(sqlite_files([job.usecase.monitoring.current]))
    files: dict[str, None] = {}
    for rel in rels:
        path = inside_repo(root, rel)  # a dep symlinked out of the repository is refused
        if path.is_file():
            files[rel] = None
        elif path.is_dir():
            for sub in _files_below(path):
                files[posixpath.join(rel, sub)] = None
    return list(files)


def sqlite_files(sources: Iterable[Source]) -> list[str]:
    """The database files of SQL sources at a literal relative ``sqlite:///path`` URL: no dep
    of the stage (a database is re-read every apply), but a file of the repository the stage
    reads. A URL from ``${env:NAME}`` is resolved where the stage runs, so it must name a
    database the workers reach (docs/scale-out.md)."""
    files = []
    for source in sources:
        url = source.url or ""
        raw = sqlite_file(url) if source.format == "sql" and "${" not in url else None
        if raw and not raw.startswith("/"):
            files.append(posixpath.normpath(raw))
    return files


def upload_inputs(
    store: Storage, root: Path, job: task.StageJob, hashes: HashCache | None = None
) -> dict[str, str]:
    """In the applying process: upload *job*'s inputs; repo-relative path -> md5.

    *hashes* (the plan's stat-keyed cache) spares re-reading a large data source the plan
    hashed already; a file changed since is hashed afresh, and one changed between hashing and
    upload fails on the worker, which checks every md5 it downloads. A dep that does not exist
    is left out: the stage then fails on the worker as it would here.
    """
    inputs: dict[str, str] = {}
    for rel in stage_inputs(root, job):
        real = inside_repo(root, rel)
        md5 = (hashes.md5(rel) if hashes is not None else None) or file_md5(real)
        store.put(real, md5)
        inputs[rel] = md5
    return inputs


def fetch_outputs(store: Storage, job: task.StageJob, result: task.StageResult) -> task.StageResult:
    """In the applying process: download the output files a worker uploaded into
    ``job.staging`` (made here), each checked against its md5; then ``task.land_staged``.

    A file the stage does not declare, or one whose bytes are not the md5 the worker reported,
    fails the stage: nothing of it lands.
    """
    st = job.stage
    if not result.staged:
        return result
    staging = Path(job.staging)
    try:
        for rel, md5 in sorted(result.outs.items()):
            log = rel == f"{task.LOG_DIR}/{st.dvc_name}.log"
            if not log and not _declared(rel, st.all_outs):
                raise MlopsctlError(f"the worker returned {rel}, which {st.id} does not declare")
            dest = inside_repo(staging, rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            store.fetch(md5, dest, f"output {rel}", f"nothing of {st.id} was recorded")
            got = file_md5(dest)
            if got != md5:
                store.remove(store.object_path(md5))  # the next run uploads it afresh
                raise MlopsctlError(
                    f"output {rel} downloaded from {store.url} is corrupt: md5 {got}, the worker "
                    f"wrote {md5}; nothing of {st.id} was recorded"
                )
        log_rel = f"{task.LOG_DIR}/{st.dvc_name}.log"
        if (staging / log_rel).is_file():  # a custom command's log, for the user to read
            dest = inside_repo(Path(job.root), log_rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / log_rel, dest)
    except (OSError, MlopsctlError) as exc:
        message = exc.message if isinstance(exc, MlopsctlError) else _os_message(exc, store)
        return replace(result, ok=False, message=message, outs={}, staged="")
    return replace(result, outs={})


def _declared(rel: str, outs: tuple[str, ...]) -> bool:
    if rel != posixpath.normpath(rel) or rel.startswith("/"):
        return False
    return any(rel == out or rel.startswith(out.rstrip("/") + "/") for out in outs)


# --- on a worker -----------------------------------------------------------------------------


def run_in_workspace(
    fn: Callable[[task.StageJob], task.StageResult],
    job: task.StageJob,
    url: str,
    inputs: Mapping[str, str],
    progress_topic: str = "",
) -> task.StageResult:
    """On a worker: run *job* in a private temp workspace holding only its *inputs* (repo-relative
    path -> md5, downloaded from *url*), upload its output files, remove the workspace.

    ``job.root`` and ``job.staging`` name the applying machine's paths: never touched here. The
    progress files the stage writes in the workspace go to apply as dask events on
    *progress_topic* (:class:`ProgressRelay`).
    """
    st = job.stage
    store = Storage(url)
    with tempfile.TemporaryDirectory(prefix=f"mlopsctl-{st.dvc_name}.") as tmp:
        ws = Path(tmp)
        try:
            for rel, md5 in sorted(inputs.items()):
                dest = inside_repo(ws, rel)
                dest.parent.mkdir(parents=True, exist_ok=True)
                store.fetch(md5, dest, f"input {rel}", "the next apply uploads it again")
                if file_md5(dest) != md5:
                    raise MlopsctlError(f"input {rel} in {store.url} is corrupt (not md5 {md5})")
        except (OSError, MlopsctlError) as exc:
            message = exc.message if isinstance(exc, MlopsctlError) else _os_message(exc, store)
            return task.StageResult(st.id, False, f"cannot fetch the inputs: {message}")
        staging = "" if st.kind == "custom" else str(task.make_staging(ws, st))
        relay = ProgressRelay(ws, _event_sender(progress_topic)) if progress_topic else None
        with relay or contextlib.nullcontext():
            result = fn(replace(job, root=str(ws), staging=staging))
        if st.kind == "custom":  # it wrote into the workspace: those files are what lands
            source, staged = ws, ("all" if result.ok else "")
        else:
            source, staged = Path(staging), result.staged
        try:
            outs = _upload_outputs(store, source, ws, st, staged)
        except (OSError, MlopsctlError) as exc:
            message = exc.message if isinstance(exc, MlopsctlError) else _os_message(exc, store)
            return replace(result, ok=False, message=message, outs={}, staged="")
        return replace(result, outs=outs, staged=staged)


def _upload_outputs(store: Storage, source: Path, ws: Path, st: Any, staged: str) -> dict[str, str]:
    """Upload the output files below *source* (and a custom command's log); rel -> md5."""
    outs: dict[str, str] = {}
    if staged:
        for rel in st.all_outs:
            path = source / rel
            if path.is_symlink():
                raise MlopsctlError(f"{st.id}: output {rel} is a symlink, which cannot be staged")
            if path.is_file():
                outs[rel] = _put(store, path)
            elif path.is_dir():
                for sub in _files_below(path):
                    if (path / sub).is_symlink():
                        raise MlopsctlError(
                            f"{st.id}: output {rel}/{sub} is a symlink, which cannot be staged"
                        )
                    outs[posixpath.join(rel, sub)] = _put(store, path / sub)
    log = f"{task.LOG_DIR}/{st.dvc_name}.log"
    if st.kind == "custom" and (ws / log).is_file():
        outs[log] = _put(store, ws / log)
    return outs


def _put(store: Storage, path: Path) -> str:
    md5 = file_md5(path)
    store.put(path, md5)
    return md5


class ProgressRelay:
    """On a worker: send the progress files a stage writes in its workspace (tuning's fits done
    / total, ``report/progress.py``) to apply through *send*, which :func:`land_progress` writes
    where apply's progress display reads them: the stage shows its progress as on a shared path.

    Each file is sent when its content changed, at most every :data:`RELAY_EVERY` seconds, and
    once more as gone (``doc`` None) when the stage removed it.
    """

    def __init__(self, ws: Path, send: Callable[[dict[str, Any]], None]) -> None:
        self.folder = ws / PROGRESS_DIR
        self.send = send
        self._sent: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlopsctl-relay", daemon=True)

    def __enter__(self) -> ProgressRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self.relay()  # the last state: what the stage removed is sent as gone

    def _run(self) -> None:
        while not self._stop.wait(RELAY_EVERY):
            self.relay()

    def relay(self) -> None:
        with contextlib.suppress(Exception):  # progress is a courtesy, never a failure
            now = {p.name: p.read_text("utf-8") for p in sorted(self.folder.glob("*.json"))}
            for name, doc in now.items():
                if self._sent.get(name) != doc:
                    self.send({"file": name, "doc": doc})
                    self._sent[name] = doc
            for name in [n for n in self._sent if n not in now]:
                self.send({"file": name, "doc": None})
                del self._sent[name]


def _event_sender(topic: str) -> Callable[[dict[str, Any]], None]:
    """Send a message to apply as an event on *topic* (a dask worker's event log)."""
    from distributed import get_worker

    worker = get_worker()
    return lambda msg: worker.log_event(topic, msg)


def land_progress(root: Path, msg: Any) -> None:
    """In the applying process: write (or remove) a progress file a worker relayed, where the
    stage would have written it on a shared path. Anything else than a plain progress file
    name with a small document is ignored; progress never fails an apply."""
    if not isinstance(msg, dict):
        return
    name, doc = msg.get("file"), msg.get("doc")
    if not isinstance(name, str) or not _PROGRESS_FILE.match(name):
        return
    with contextlib.suppress(Exception):
        path = inside_repo(root, f"{PROGRESS_DIR}/{name}")
        if doc is None:
            path.unlink(missing_ok=True)
        elif isinstance(doc, str) and len(doc) <= 4096:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, doc)


def sees_storage(url: str, path: str, token: str) -> str:
    """On a worker: "" when it reads *token* at *path* of the storage *url*, else what it saw."""
    try:
        text = Storage(url).read_text(path)
    except MlopsctlError as exc:
        return exc.message
    except Exception as exc:  # any backend's error (credentials, network): say it
        return f"cannot read {path}: {type(exc).__name__}: {first_line(exc)}"
    return "" if text == token else f"{path} holds other content"


# --- helpers ---------------------------------------------------------------------------------


def _files_below(path: Path) -> Iterator[str]:
    """The files below directory *path*, relative POSIX paths, sorted; symlinks not followed."""
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        base = os.path.relpath(dirpath, path)
        for name in sorted(filenames):
            yield name if base == "." else posixpath.join(Path(base).as_posix(), name)


def _os_message(exc: OSError, store: Storage) -> str:
    return f"storage {store.url}: {type(exc).__name__}: {first_line(exc)}"
