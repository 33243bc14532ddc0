"""Each use case's applied state at a git revision, read from git without checking out.

The applied state of a use case is what its last apply committed: the params its stages were
recorded with (``dvc.lock``), its metrics (``reports/<name>/metrics.json``), the gate verdict
(``gate.json``), the monitoring verdict (``monitoring/breach.json``) and the hashes of the data
it ingested (the ingest stage's deps and snapshot in ``dvc.lock``). At a revision these are
read with ``git cat-file`` (two processes for any number of files and revisions); in the working
tree from disk. Nothing imports pandas, DVC or GitPython.

Every file read comes from a commit anyone could have made: a file that is too large, not what
it should be, or (in the working tree) not a regular file inside the repository is marked
:class:`Unreadable` and reported in ``problems``; it never raises.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsctl.compile.layout import MONITORING_BREACH, UseCasePaths
from mlopsctl.errors import MlopsctlError

LOCK_FILE = "dvc.lock"
#: the label of the working tree, where a revision would be (as ``dvc metrics diff`` says)
WORKSPACE = "workspace"
#: files larger than these are not what mlopsctl writes: marked unreadable, never read
MAX_LOCK_BYTES = 32 << 20
MAX_REPORT_BYTES = 1 << 20
#: a dvc.lock's params are copied under this many values (YAML aliases can make a small file
#: describe an enormous tree: "billion laughs")
MAX_NODES = 100_000
MAX_DEPTH = 64
#: a use-case name (the spec's pattern): anything else found at a revision is ignored
NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
_STAGE = re.compile(r"^([a-z][a-z0-9-]{0,62})_(.+)$")


class RevisionError(MlopsctlError):
    """A revision that does not resolve, or git that cannot be run here."""


@dataclass(frozen=True)
class Unreadable:
    """A file that exists but cannot be taken as what mlopsctl wrote (the reason says why)."""

    path: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}: {self.why}"


@dataclass(frozen=True)
class Check:
    """One goal metric as the gate checked it."""

    metric: str
    value: float | None
    min: float | None
    max: float | None
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": self.value,
            "min": self.min,
            "max": self.max,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    checks: tuple[Check, ...] = ()

    @property
    def word(self) -> str:
        return "passed" if self.passed else "failed"

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [c.to_dict() for c in self.checks]}


@dataclass(frozen=True)
class MonitoringVerdict:
    breach: bool
    reasons: tuple[str, ...] = ()

    @property
    def word(self) -> str:
        return "breach" if self.breach else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"breach": self.breach, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class UseCaseState:
    """One use case's applied state at one revision (or in the working tree)."""

    name: str
    stages: Mapping[str, str] = field(default_factory=dict)  # stage -> digest of its lock entry
    params: Mapping[str, Any] = field(default_factory=dict)  # dotted spec key -> value
    metrics: Mapping[str, float] = field(default_factory=dict)  # dotted name -> number
    gate: GateVerdict | None = None
    monitoring: MonitoringVerdict | None = None
    data: Mapping[str, str] = field(default_factory=dict)  # ingest deps and snapshot -> md5
    problems: tuple[str, ...] = ()

    @property
    def present(self) -> bool:
        """Anything applied at all (a lock entry or a report)."""
        return bool(self.stages or self.metrics or self.gate or self.monitoring or self.problems)

    def key(self) -> tuple[Any, ...]:
        """What an apply can change; equal keys mean the same applied state."""
        return (
            tuple(sorted(self.stages.items())),
            _canonical(self.metrics),
            _canonical(self.gate.to_dict() if self.gate else None),
            _canonical(self.monitoring.to_dict() if self.monitoring else None),
            self.problems,
        )

    def goal_directions(self) -> dict[str, str]:
        """Metric -> "higher" or "lower" (which way is better), from the gate's bounds."""
        return directions_of(self.gate.checks if self.gate else ())


@dataclass(frozen=True)
class RevisionState:
    """Every use case's applied state at one revision."""

    label: str  # what the user named: "HEAD~1", "origin/main", or "workspace"
    commit: str | None  # the full commit id; None for the working tree
    usecases: Mapping[str, UseCaseState]
    problems: tuple[str, ...] = ()  # of files shared by every use case (dvc.lock)

    def get(self, name: str) -> UseCaseState:
        return self.usecases.get(name) or UseCaseState(name)

    @property
    def short(self) -> str:
        return self.commit[:7] if self.commit else WORKSPACE


def directions_of(checks: Iterable[Check]) -> dict[str, str]:
    """Which way each goal metric is better: ``min`` only -> higher, ``max`` only -> lower."""
    out = {}
    for c in checks:
        if c.min is not None and c.max is None:
            out[c.metric] = "higher"
        elif c.max is not None and c.min is None:
            out[c.metric] = "lower"
    return out


# --- git ----------------------------------------------------------------------------------------


Blob = bytes | Unreadable | None  # None: no such file


class Git:
    """git commands in a project's repository (the project may be a subdirectory of it)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        out = self.run("rev-parse", "--show-prefix", what="open the git repository").strip()
        self.prefix = out.decode("utf-8", "surrogateescape")  # "" or "sub/dir/"

    def run(self, *args: str, what: str = "", stdin: bytes | None = None) -> bytes:
        """git's stdout; a failure is one :class:`RevisionError` with git's first error line."""
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        try:
            proc = subprocess.run(
                ["git", "-c", "core.quotePath=false", *args],
                cwd=self.root,
                input=stdin,
                capture_output=True,
                env=env,
                check=False,
            )
        except OSError as exc:
            raise RevisionError(f"git is not available: {exc.strerror or exc}") from exc
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            first = next((ln for ln in err if ln.startswith("fatal:")), err[0] if err else "")
            first = first.removeprefix("fatal:").strip()
            if "not a git repository" in first:
                raise RevisionError(f"{self.root} is not in a git repository")
            raise RevisionError(f"cannot {what or args[0]}: git says: {first}")
        return proc.stdout

    def resolve(self, rev: str) -> str:
        """The commit id *rev* names, or one error: ``unknown revision 'X'``."""
        if not rev or "\n" in rev or "\0" in rev:
            raise RevisionError(f"unknown revision {rev!r}")
        try:
            out = self.run(
                "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"
            )
        except RevisionError as exc:
            raise RevisionError(f"unknown revision '{rev}'") from exc
        return out.decode().strip()

    def exists(self, rev: str) -> bool:
        try:
            self.resolve(rev)
        except RevisionError:
            return False
        return True

    def read(self, wanted: Sequence[tuple[str, str]], limits: Mapping[str, int]) -> dict[Any, Blob]:
        """Files at commits, without checking out: ``{(commit, path): bytes | Unreadable | None}``.

        *path* is relative to the project; *limits* maps a path to its size limit (default
        :data:`MAX_REPORT_BYTES`). One ``cat-file --batch-check`` for sizes, one ``--batch``
        for the small blobs (each distinct blob once).
        """
        wanted = list(dict.fromkeys(wanted))
        if not wanted:
            return {}
        lines = "".join(f"{c}:{self.prefix}{p}\n" for c, p in wanted).encode()
        check = self.run(
            "cat-file",
            "--batch-check=%(objectname) %(objecttype) %(objectsize)",
            stdin=lines,
            what="read files from git",
        ).splitlines()
        result: dict[Any, Blob] = {}
        fetch: dict[str, list[tuple[str, str]]] = {}
        for (commit, path), line in zip(wanted, check, strict=False):
            parts = line.decode("utf-8", "replace").split()
            if len(parts) != 3 or parts[-1] in ("missing", "ambiguous"):
                result[commit, path] = None
                continue
            oid, kind, size = parts
            limit = limits.get(path, MAX_REPORT_BYTES)
            if kind != "blob":
                result[commit, path] = Unreadable(path, f"is a {kind}, not a file")
            elif int(size) > limit:
                result[commit, path] = Unreadable(
                    path, f"too large ({int(size)} bytes; mlopsctl reads at most {limit})"
                )
            else:
                fetch.setdefault(oid, []).append((commit, path))
        if fetch:
            blobs = self._blobs(list(fetch))
            for oid, keys in fetch.items():
                for key in keys:
                    result[key] = blobs.get(oid)
        return result

    def _blobs(self, oids: list[str]) -> dict[str, bytes]:
        out = self.run("cat-file", "--batch", stdin="".join(o + "\n" for o in oids).encode())
        blobs: dict[str, bytes] = {}
        pos = 0
        while pos < len(out):
            end = out.index(b"\n", pos)
            header = out[pos:end].decode().split()
            pos = end + 1
            if len(header) != 3:  # "<oid> missing": cannot happen after batch-check
                continue
            size = int(header[2])
            blobs[header[0]] = out[pos : pos + size]
            pos += size + 1
        return blobs

    def subdirectories(self, commit: str, path: str) -> list[str]:
        """Names of the directories in *path* at *commit* ([] when it is not a directory)."""
        try:
            out = self.run("ls-tree", "-z", "-d", "--name-only", f"{commit}:{self.prefix}{path}")
        except RevisionError:
            return []
        return [n.decode("utf-8", "replace") for n in out.split(b"\0") if n]


# --- reading one revision ------------------------------------------------------------------------


def read_revision(root: Path, rev: str, git: Git | None = None) -> RevisionState:
    """Every use case's applied state at *rev* (a commit-ish), read from git."""
    git = git or Git(root)
    commit = git.resolve(rev)
    return read_commits(git, [commit], labels={commit: rev})[commit]


def read_commits(
    git: Git,
    commits: Sequence[str],
    names: Iterable[str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, RevisionState]:
    """The applied states at several commits at once (for history): commit -> state.

    *names* limits the use cases read (default: every one the commit's dvc.lock or
    ``reports/`` names).
    """
    limits = {LOCK_FILE: MAX_LOCK_BYTES}
    locks = git.read([(c, LOCK_FILE) for c in commits], limits)
    memo: dict[Any, _Lock] = {}  # history: most commits share their dvc.lock with a neighbour
    parsed = {}
    for c in commits:
        blob = locks.get((c, LOCK_FILE))
        key = hashlib.sha256(blob).digest() if isinstance(blob, bytes) else blob
        if key not in memo:
            memo[key] = _parse_lock(blob)
        parsed[c] = memo[key]
    chosen: dict[str, list[str]] = {}
    for c in commits:
        if names is not None:
            chosen[c] = list(names)
        else:
            found = set(parsed[c].stages) | set(git.subdirectories(c, "reports"))
            chosen[c] = sorted(n for n in found if NAME.fullmatch(n))
    wanted = [(c, rel) for c in commits for n in chosen[c] for rel in _report_files(n)]
    files = git.read(wanted, {})
    states = {}
    for c in commits:
        usecases = {
            n: _usecase(n, parsed[c], {rel: files.get((c, rel)) for rel in _report_files(n)})
            for n in chosen[c]
        }
        label = (labels or {}).get(c, c[:7])
        states[c] = RevisionState(label, c, usecases, parsed[c].problems)
    return states


def read_worktree(root: Path, names: Iterable[str] | None = None) -> RevisionState:
    """Every use case's applied state in the working tree (files on disk, uncommitted included)."""
    lock = _parse_lock(_read_file(root, LOCK_FILE, MAX_LOCK_BYTES))
    if names is None:
        found = set(lock.stages)
        reports = root / "reports"
        if _inside(root, reports) and reports.is_dir() and not reports.is_symlink():
            found |= {e.name for e in os.scandir(reports) if e.is_dir(follow_symlinks=False)}
        names = sorted(n for n in found if NAME.fullmatch(n))
    usecases = {
        n: _usecase(
            n, lock, {rel: _read_file(root, rel, MAX_REPORT_BYTES) for rel in _report_files(n)}
        )
        for n in names
    }
    return RevisionState(WORKSPACE, None, usecases, lock.problems)


def _inside(root: Path, path: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False


def _read_file(root: Path, rel: str, limit: int) -> Blob:
    """A small regular file inside the repository, or why it cannot be read, or None."""
    path = root / rel
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Unreadable(rel, exc.strerror or str(exc))
    if not _inside(root, path.parent):
        return Unreadable(rel, "lies outside the repository (through a symlink)")
    if not stat.S_ISREG(st.st_mode):
        return Unreadable(rel, "is not a regular file (a symlink or a directory)")
    if st.st_size > limit:
        return Unreadable(rel, f"too large ({st.st_size} bytes; mlopsctl reads at most {limit})")
    try:
        return path.read_bytes()
    except OSError as exc:
        return Unreadable(rel, exc.strerror or str(exc))


def _report_files(name: str) -> tuple[str, str, str]:
    paths = UseCasePaths(name)
    return paths.metrics, paths.gate, paths.monitoring_file(MONITORING_BREACH)


# --- parsing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lock:
    stages: Mapping[str, Mapping[str, Any]]  # use case -> stage -> its entry (plain values)
    problems: tuple[str, ...] = ()


class _TooLarge(Exception):
    pass


def _parse_lock(blob: Blob) -> _Lock:
    if blob is None:
        return _Lock({})
    if isinstance(blob, Unreadable):
        return _Lock({}, (str(blob),))
    import yaml

    from mlopsctl.spec.yaml12 import Loader

    try:
        data = yaml.load(blob, Loader=Loader)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        return _Lock({}, (f"{LOCK_FILE}: not valid YAML{at}",))
    except (ValueError, RecursionError):
        return _Lock({}, (f"{LOCK_FILE}: not valid YAML",))
    if data is None:
        return _Lock({})
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, dict):
        return _Lock({}, (f"{LOCK_FILE}: not a DVC lock file (no 'stages' mapping)",))
    budget = [MAX_NODES]
    out: dict[str, dict[str, Any]] = {}
    try:
        for key, entry in stages.items():
            m = _STAGE.fullmatch(key) if isinstance(key, str) else None
            if m is None or not isinstance(entry, dict):
                continue
            out.setdefault(m.group(1), {})[m.group(2)] = _plain(entry, budget, 0)
    except _TooLarge:
        return _Lock({}, (f"{LOCK_FILE}: too large or too deeply nested to read",))
    return _Lock(out)


def _plain(value: Any, budget: list[int], depth: int) -> Any:
    """A JSON-like copy of *value* within the node budget (aliases are copied, so counted)."""
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        raise _TooLarge
    if isinstance(value, dict):
        return {str(k): _plain(v, budget, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, budget, depth + 1) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def _usecase(name: str, lock: _Lock, files: Mapping[str, Blob]) -> UseCaseState:
    entries = lock.stages.get(name, {})
    paths = UseCasePaths(name)
    problems: list[str] = []
    params: dict[str, Any] = {}
    for entry in entries.values():
        for values in _dict(entry.get("params")).values():
            for key, value in _dict(values).items():
                _flatten(clean(key), value, params)
    ingest = _dict(entries.get("ingest"))
    data = {**_hashes(ingest.get("deps")), **_hashes(ingest.get("outs"))}
    breach = paths.monitoring_file(MONITORING_BREACH)
    metrics = _metrics(_json(files.get(paths.metrics), problems, paths.metrics))
    gate = _gate(_json(files.get(paths.gate), problems, paths.gate), problems, paths.gate)
    monitoring = _monitoring(_json(files.get(breach), problems, breach), problems, breach)
    return UseCaseState(
        name=name,
        stages={s: _digest(e) for s, e in sorted(entries.items())},
        params=dict(sorted(params.items())),
        metrics=metrics,
        gate=gate,
        monitoring=monitoring,
        data=dict(sorted(data.items())),
        problems=tuple(problems),
    )


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean(text: str, limit: int = 500) -> str:
    """A name or message from a file anyone could have written, safe to print: control
    characters (terminal escapes, newlines that would fake a line) become "?", and it is cut
    at *limit* characters."""
    text = _CONTROL.sub("?", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{clean(k)}", v, out)
    else:
        out.setdefault(prefix, value)


def _hashes(items: Any) -> dict[str, str]:
    out = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            out[clean(item["path"])] = clean(str(item.get("md5") or item.get("etag") or ""))
    return out


def _digest(value: Any) -> str:
    return hashlib.sha256(_canonical(value).encode()).hexdigest()[:16]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _json(blob: Blob, problems: list[str], path: str) -> dict[str, Any] | None:
    """A JSON object from *blob*, or None (absent, or unreadable: then a problem is listed)."""
    if blob is None:
        return None
    if isinstance(blob, Unreadable):
        problems.append(str(blob))
        return None
    try:
        value = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        problems.append(f"{path}: not valid JSON")
        return None
    if not isinstance(value, dict):
        problems.append(f"{path}: not a JSON object")
        return None
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    if not math.isfinite(number):
        return None
    return value if isinstance(value, int) else number  # a count stays a count: 114, not 114.0


def _metrics(doc: dict[str, Any] | None) -> dict[str, float]:
    """The numeric, finite values of a metrics file; nested objects as dotted names."""
    if doc is None:
        return {}
    out: dict[str, float] = {}

    def walk(prefix: str, node: Any, depth: int) -> None:
        if len(out) >= 1000 or depth > 8:
            return
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v, depth + 1)
            return
        number = _number(node)
        if number is not None:
            out[clean(prefix)] = number

    walk("", doc, 0)
    return dict(sorted(out.items()))


def _gate(doc: dict[str, Any] | None, problems: list[str], path: str) -> GateVerdict | None:
    if doc is None:
        return None
    if not isinstance(doc.get("passed"), bool):
        problems.append(f"{path}: no 'passed' verdict")
        return None
    checks = []
    listed = doc.get("checks")
    for c in listed if isinstance(listed, list) else []:
        if isinstance(c, dict) and isinstance(c.get("metric"), str):
            checks.append(
                Check(
                    clean(c["metric"]),
                    _number(c.get("value")),
                    _number(c.get("min")),
                    _number(c.get("max")),
                    c.get("passed") is True,
                )
            )
    return GateVerdict(doc["passed"], tuple(checks[:1000]))


def _monitoring(
    doc: dict[str, Any] | None, problems: list[str], path: str
) -> MonitoringVerdict | None:
    if doc is None:
        return None
    if not isinstance(doc.get("breach"), bool):
        problems.append(f"{path}: no 'breach' verdict")
        return None
    reasons = doc.get("reasons")
    listed = tuple(clean(str(r)) for r in reasons[:100]) if isinstance(reasons, list) else ()
    return MonitoringVerdict(doc["breach"], listed)
