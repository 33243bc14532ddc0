"""DVC through its in-process API: init, add, commit (batched), push, checkout from cache.

Importing dvc costs ~0.25 s and attaches INFO log handlers; this module is imported only by
commands that touch the repository, and quiets DVC's loggers right after importing it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mlopsctl import fault
from mlopsctl.errors import StateError
from mlopsctl.fsutil import atomic_write
from mlopsctl.plan.state import REMEDY
from mlopsctl.spec.cache import stat_key

log = logging.getLogger(__name__)


def _quiet() -> None:
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    import dvc.logger  # noqa: F401  (attaches its handlers on import)

    debug = logging.getLogger("mlopsctl").isEnabledFor(logging.DEBUG)  # --debug: DVC says more
    for name in ("dvc", "dvc_data", "dvc_objects", "scmrepo", "dvc.ui"):
        logging.getLogger(name).setLevel(logging.INFO if debug else logging.WARNING)


#: the running :func:`preload`, which :func:`open_repo` waits for (one thread opens at a time)
_preloading: threading.Thread | None = None


def preload(root: Path | None = None) -> threading.Thread:
    """Import the parts of DVC that :func:`record` uses, in a background thread, and with
    *root*, open (and close) that repository once.

    apply calls it when its stages start in worker processes: the ~0.3 s import then overlaps
    the stages (the main process only waits meanwhile) instead of running after the last one.
    Opening the repository once more imports what DVC loads on first use (its git layer, config,
    cache manager, the YAML library of its files: a 6-stage record took 140 ms, now 80 ms),
    and does only what the record's own opening does next (DVC's ``.dvc/tmp`` and site-cache
    directories). :func:`open_repo` waits for this thread (it changes the working directory, and
    two openings at once would share DVC's link database), and so does apply once its stages
    have ended (:func:`wait_for_preload`).
    Not a daemon thread: an exit waits for the import rather than killing it half-done. It
    never raises: an apply that ends while it imports (interrupted, or failed before recording)
    shuts the interpreter down under it, and an import then fails ("can't register atexit after
    shutdown"), which is no error of the user's; an import that fails for good fails again,
    with its own message, where :func:`record` needs it.
    """
    global _preloading

    def load() -> None:
        try:
            _quiet()
            import dvc.dependency.param
            import dvc.repo
            import dvc.stage.serialize
            import dvc.utils.serialize
            import dvc.utils.strictyaml  # dvc.yaml's and dvc.lock's parser

            if root is not None:
                dvc.repo.Repo(os.fspath(root)).close()
        except Exception as exc:  # a preload only: see above
            log.debug("DVC preload stopped: %s: %s", type(exc).__name__, exc)

    thread = threading.Thread(target=load, name="mlopsctl-dvc-preload")
    thread.start()
    _preloading = thread
    return thread


def wait_for_preload() -> None:
    """Return once the :func:`preload` started last (if any) has ended."""
    global _preloading
    thread, _preloading = _preloading, None
    if thread is not None and thread is not threading.current_thread():
        thread.join()


@contextlib.contextmanager
def open_repo(root: Path) -> Iterator[Any]:
    wait_for_preload()
    _quiet()
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    # DVC resolves some stage paths against the working directory: work from the root.
    cwd = os.getcwd()
    os.chdir(root)
    try:
        try:
            repo = Repo(os.fspath(root))
        except NotDvcRepoError as exc:
            raise StateError(f"{root} is not a DVC repository (run `mlopsctl init`)") from exc
        try:
            yield repo
        finally:
            repo.close()
    finally:
        os.chdir(cwd)


def ensure_initialised(root: Path) -> bool:
    """``dvc init`` unless done, with analytics off. Returns True when it initialised now."""
    _quiet()
    from dvc.repo import Repo

    created = False
    if not (root / ".dvc").is_dir():
        Repo.init(os.fspath(root)).close()
        created = True
    with open_repo(root) as repo, repo.config.edit() as conf:
        conf["core"]["analytics"] = False
    return created


def configure_remote(root: Path, name: str, url: str) -> None:
    """Add (or update) remote *name* and make it the default."""
    with open_repo(root) as repo, repo.config.edit() as conf:
        conf["remote"][name] = {"url": url}
        conf["core"]["remote"] = name


def remote_configured(root: Path, name: str | None) -> str | None:
    """The remote apply should push to: *name* if configured, else DVC's default, else None."""
    with open_repo(root) as repo:
        remotes = repo.config.get("remote", {})
        if name and name in remotes:
            return name
        default = repo.config.get("core", {}).get("remote")
        return default if default in remotes else None


def add(root: Path, paths: Sequence[str]) -> None:
    """``dvc add`` the given repo-relative files."""
    if not paths:
        return
    with open_repo(root) as repo:
        repo.add([os.fspath(root / p) for p in paths])


@dataclass(frozen=True)
class Recorded:
    """What one :func:`record` call wrote: stages in dvc.lock, sources in their ``.dvc`` files."""

    stages: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    sources_updated: tuple[str, ...] = ()  # tracked sources whose .dvc now names the new data
    sources_tracked: tuple[str, ...] = ()  # sources DVC did not track before


def record(
    root: Path,
    stage_names: Sequence[str] = (),
    *,
    removed: Sequence[str] = (),
    sources: Sequence[str] = (),
    source_remotes: Mapping[str, str] | None = None,
) -> Recorded:
    """Record stages and data sources with DVC: cache their outputs, update dvc.lock and .dvc.

    Like ``dvc commit --force STAGE...`` plus ``dvc add`` for changed sources, but dvc.lock and
    every ``.dvc`` file are written whole to a temporary file and renamed into place: DVC itself
    truncates and rewrites them, and a kill in that window leaves an empty dvc.lock. dvc.lock is
    written once for all stages (DVC's own commit of N targets rewrites it N times).
    *source_remotes*: the DVC remote each source's ``.dvc`` file names (path -> remote; the
    others name none, DVC's default).
    """
    wanted = set(stage_names)
    lock = root / "dvc.lock"
    if lock.exists() and not lock.read_text("utf-8").strip():
        raise StateError(f"dvc.lock is empty (an interrupted write?): {REMEDY}")
    with open_repo(root) as repo, repo.lock, _params_parsed_once(), _git_index_read_once(repo):
        updated, tracked = _record_sources(root, repo, sources, source_remotes or {})
        lock_before = stat_key(lock)  # the dvc.lock that loading the stages reads
        pipeline = _pipeline_file(root, repo)
        stages = [s for s in pipeline.stages.values() if s.name in wanted] if pipeline else []
        missing = wanted - {s.name for s in stages}
        if missing:
            raise StateError("dvc.yaml has no stage " + ", ".join(sorted(missing)))
        for stage in stages:
            # run_cache=False: mlopsctl keeps its own run-cache (.mlopsctl/runs), keyed by the
            # stage fingerprint; DVC's costs a YAML write and a params re-read per stage
            stage.save(run_cache=False)
            # relink=False: the output we just wrote stays as it is; relinking would copy the
            # cache object back over it (the default cache type is reflink,copy)
            stage.commit(relink=False)
        if stages or removed:
            _write_lock(root, stages, removed, _parsed_lock(pipeline, lock_before))
    return Recorded(tuple(s.name for s in stages), tuple(removed), updated, tracked)


def _pipeline_file(root: Path, repo: Any) -> Any:
    """DVC's view of the root dvc.yaml (the one mlopsctl writes), or None when there is none.

    Its stages are what ``repo.index`` would give for that file, without the index's walk of
    the whole workspace for every other dvc.yaml and ``.dvc`` file, and it keeps the dvc.lock
    data it parsed (:func:`_parsed_lock`).
    """
    from dvc.dvcfile import load_file

    path = root / "dvc.yaml"
    return load_file(repo, os.fspath(path)) if path.is_file() else None


def _parsed_lock(
    pipeline: Any, before: list[int] | None
) -> tuple[list[int], dict[str, Any]] | None:
    """dvc.lock's data as loading *pipeline*'s stages parsed it, with the file's stat *before*
    that (the caller checks the file is unchanged since); None when it was not parsed."""
    data = getattr(pipeline, "__dict__", {}).get("lockfile_contents")
    if before is None or not isinstance(data, dict):
        return None
    return before, data


@contextlib.contextmanager
def _git_index_read_once(repo: Any) -> Iterator[None]:
    """Within the block, DVC's ``scm.is_tracked`` reads git's index once, not once per output,
    and ``scm.is_ignored`` answers at once for outputs already listed (:func:`_listed_or`).

    ``stage.save`` asks, for every output, whether git tracks it (DVC refuses to cache a
    git-tracked file); the dulwich backend answers by opening and scanning the whole index
    and reading git's config files each time: ~1 ms per output here, more as the repository
    grows. The answer is the same (a path is tracked when the index holds it or a file under
    it); the index is read again whenever its file changes.
    """
    scm = repo.scm
    try:
        index = Path(scm.dulwich.repo.index_path())
    except Exception:  # no git (DVC's --no-scm mode), or another backend: leave it as it is
        yield
        return
    memo: dict[str, Any] = {}

    def is_tracked(path: str) -> bool:
        key = stat_key(index)
        if memo.get("key") != key or "paths" not in memo:
            files = {p.decode("utf-8", "surrogateescape") for p in scm.dulwich.repo.open_index()}
            dirs = {str(parent) for f in files for parent in PurePosixPath(f).parents}
            memo.update(key=key, paths=files | (dirs - {"."}))
        rel = os.path.relpath(path, scm.root_dir).replace(os.path.sep, "/")
        return rel in memo["paths"]

    scm.is_tracked = is_tracked
    scm.is_ignored = _listed_or(scm.is_ignored)
    try:
        yield
    finally:
        del scm.is_tracked
        del scm.is_ignored


#: characters that make a .gitignore line a pattern rather than a literal name
_GLOB = frozenset("*?[]\\!# ")


def _listed_or(is_ignored: Any) -> Any:
    """*is_ignored*, answering at once for an output its folder's .gitignore lists literally.

    DVC asks for every output whether git ignores it (and adds ``/name`` to the folder's
    .gitignore if not); dulwich answers by matching every pattern of that file, so recording N
    outputs of one folder cost N x N matches (1,000 stages: ~2 million). When the folder's own
    .gitignore, the deepest one that applies and so the one that decides, has the line
    ``/name`` and no negation (``!``) after it, the answer is yes whatever else it holds; any
    other case goes to dulwich. Each .gitignore is read again when its stat changes.
    """
    files: dict[str, tuple[list[int], dict[str, int], int]] = {}

    def listed(path: Any) -> bool:
        text = os.fspath(path)
        name = os.path.basename(text)
        if not name or text.endswith(os.sep) or _GLOB.intersection(name):
            return False
        gitignore = os.path.join(os.path.dirname(text), ".gitignore")
        key = stat_key(Path(gitignore))  # None: missing, or not a regular file (a symlink)
        if key is None:
            return False
        cached = files.get(gitignore)
        if cached is None or cached[0] != key:
            try:
                lines = Path(gitignore).read_text("utf-8").split("\n")
            except (OSError, UnicodeDecodeError):
                return False
            negated = [i for i, line in enumerate(lines) if line.startswith("!")]
            cached = (key, {line: i for i, line in enumerate(lines)}, max(negated, default=-1))
            files[gitignore] = cached
        at = cached[1].get("/" + name)
        return at is not None and at > cached[2]

    def answer(path: Any) -> bool:
        return listed(path) or bool(is_ignored(path))

    return answer


@contextlib.contextmanager
def _params_parsed_once() -> Iterator[None]:
    """Within the block, DVC parses each params file once, however many stages name it.

    Every built-in stage of a use case names its use-case file as a params file, and DVC's
    ``stage.save`` parses the whole file (ruamel, the slowest YAML parser) for each of them: the
    cost grew with stages x file size. All stages of one record now see the same version of
    the file (before, an edit in the middle of recording could give them different ones); each
    gets its own deep copy of the parsed document, so no stage can alter another's values.
    """
    import copy

    from dvc.dependency import param

    original = param.load_path
    parsed: dict[tuple[str, int, str], Any] = {}

    def load_path(fs_path: str, fs: Any, **kwargs: Any) -> Any:
        key = (os.fspath(fs_path), id(fs), repr(sorted(kwargs.items())))
        if key not in parsed:
            parsed[key] = original(fs_path, fs, **kwargs)
        return copy.deepcopy(parsed[key])

    param.load_path = load_path
    try:
        yield
    finally:
        param.load_path = original


def _record_sources(
    root: Path, repo: Any, sources: Sequence[str], remotes: Mapping[str, str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Cache every changed DVC-tracked source and rewrite its .dvc; track untracked ones.

    Each ``.dvc`` file names the remote *remotes* gives its source (none when absent): a
    ``.dvc`` whose remote changed is rewritten too, with the same data.
    """
    updated: list[str] = []
    new: list[str] = []
    for rel in dict.fromkeys(sources):
        dvcfile = root / f"{rel}.dvc"
        if not dvcfile.exists():
            if not _git_tracked(repo, rel):
                new.append(rel)
            continue
        stage = repo.stage.load_one(os.fspath(dvcfile))
        changed = bool(stage.changed_outs(allow_missing=False))
        moved = any((out.remote or None) != remotes.get(rel) for out in stage.outs)
        if not (changed or moved):
            continue
        if changed:
            stage.save()
            stage.commit(relink=False)
            updated.append(rel)
        _write_source_file(dvcfile, stage, remotes.get(rel))
    if new:
        repo.add([os.fspath(root / p) for p in new])
        for rel in new:
            if remotes.get(rel):
                dvcfile = root / f"{rel}.dvc"
                _write_source_file(dvcfile, repo.stage.load_one(os.fspath(dvcfile)), remotes[rel])
    return tuple(updated), tuple(new)


def _write_source_file(dvcfile: Path, stage: Any, remote: str | None) -> None:
    """A source's ``.dvc`` file, naming *remote* (or no remote), written whole then renamed."""
    from dvc.stage import serialize
    from dvc.utils.serialize import dumps_yaml

    for out in stage.outs:
        out.remote = remote
    fault.point("source-write")
    atomic_write(dvcfile, dumps_yaml(serialize.to_single_stage_file(stage)))


def _git_tracked(repo: Any, rel: str) -> bool:
    """True when git versions *rel* itself (then DVC must not track it too)."""
    try:
        return bool(repo.scm.is_tracked(rel))
    except Exception:  # no git (DVC's --no-scm mode): nothing is git-tracked
        return False


def _write_lock(
    root: Path,
    stages: Sequence[Any],
    removed: Sequence[str],
    parsed: tuple[list[int], dict[str, Any]] | None = None,
) -> None:
    """dvc.lock with *stages* updated and *removed* dropped, written whole, then renamed.

    *parsed*: dvc.lock's data as DVC read it when loading the stages, and the file's stat then
    (:func:`_parsed_lock`), used when the file is unchanged since, instead of parsing it a
    second time (ruamel: ~1.7 s at 1,000 stages). DVC's own dumper writes it, as before: a
    dvc.lock that DVC or mlopsctl wrote comes back byte for byte; a hand-written one is
    rewritten in DVC's canonical form (comments dropped, ``0o17`` as ``15``), the same values.
    """
    from dvc.stage import serialize
    from dvc.utils.serialize import dumps_yaml, parse_yaml_for_update

    path = root / "dvc.lock"
    text = path.read_text("utf-8") if path.exists() else ""
    if parsed is not None and text and parsed[0] == stat_key(path):
        data = dict(parsed[1])  # a copy: DVC's own stays as it read it
        data["stages"] = dict(data.get("stages") or {})
    else:
        data = parse_yaml_for_update(text, os.fspath(path)) if text else {}
    if not data:
        data["schema"] = "2.0"  # first key, as DVC writes it
    data["stages"] = data.get("stages", {})
    for stage in stages:
        data["stages"].update(serialize.to_lockfile(stage))
    for name in removed:
        data["stages"].pop(name, None)
    fault.point("lock-write")
    atomic_write(path, dumps_yaml(data))


def push(root: Path, remote: str, targets: Sequence[str] | None = None) -> int:
    """``dvc push -r REMOTE [TARGET...]``: of everything dvc.lock and the .dvc files name, or of
    *targets* (``dvc.yaml:STAGE``, ``PATH.dvc``). Outputs that name another remote are left out.

    Returns the number of files transferred (0 when the remote already held them all); a failed
    or partial push is a :class:`StateError` carrying DVC's message in one line.
    """
    start = time.perf_counter()
    with open_repo(root) as repo:
        try:
            result = repo.push(targets=list(targets) if targets else None, remote=remote)
        except Exception as exc:  # DvcException, or an OSError from the remote's file system
            raise StateError(f"push to DVC remote '{remote}' failed: {_one_line(exc)}") from exc
    log.debug("dvc push to '%s': %s file(s) in %.2fs", remote, result, time.perf_counter() - start)
    return int(result or 0)


def not_pushed(root: Path, remote: str, targets: Sequence[str] | None = None) -> list[str]:
    """Tracked outputs (of dvc.lock and the .dvc files, or of *targets*) whose objects the
    remote lacks; outputs that name another remote are not asked about.

    ``dvc status -c`` (``Repo.status(cloud=True)``) skips every output that names a remote
    (``remote:``, as a use case's own ``infra.remote`` writes them), taking them for imports:
    it would call a use case's artifacts pushed whatever its remote holds. So the objects are
    collected as it does, and those of outputs naming *remote* are asked about too.
    """
    with open_repo(root) as repo, repo.lock:
        try:
            used = repo.used_objs(
                list(targets) if targets else None, force=True, remote=remote, push=True
            )
            asked = repo.cloud.get_remote_odb(remote, "status").path
            missing: set[str] = set()
            for odb, obj_ids in used.items():
                # None: outputs of no remote; an odb of another path: an import's source
                if odb is not None and odb.path != asked:
                    continue
                status = repo.cloud.status(obj_ids, remote=remote)
                missing.update(h.obj_name for h in (*status.new, *status.missing))
        except Exception as exc:  # DvcException, or an OSError from the remote's file system
            raise StateError(f"cannot read DVC remote '{remote}': {_one_line(exc)}") from exc
    return sorted(missing)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f": {' '.join(str(cause).split())}"
    return text


def cache_path(root: Path, md5: str) -> Path:
    """Where DVC 3 keeps the object with this md5 in the local cache."""
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
