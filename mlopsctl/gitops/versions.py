"""Model versions and deployments as git tags, in GTO's format (Iterative's git-tag registry).

* A **version** is an annotated tag ``<name>@v<MAJOR>.<MINOR>.<PATCH>`` on an apply commit
  whose recorded model passed its quality gate. The first is ``v1.0.0``; a new model with the
  same interface bumps the minor number (``v1.1.0``); a change of the model's interface (its
  problem, target or feature set) bumps the major one (``v2.0.0``). The patch number is left to
  people (a version tagged by hand with ``gto register``); bumps start from the greatest
  version of any origin, so they never collide.
* A **deployment** is GTO's stage assignment, an annotated tag ``<name>#prod#<N>`` (N counts
  the use case's numbered tags, as GTO does) on the commit of the version deployed.

The tag messages are deterministic text (a title line, then ``Key: value`` lines): the model's
md5, its interface, the data hashes, the metrics and the gate verdict. ``Model:`` and
``Interface:`` are read back to decide the next version.

Reading is one ``git for-each-ref`` call; this module imports nothing heavy (``status`` and
``history`` use it). Which tags an apply creates is decided by :func:`decide` from the state
the apply commit records (dvc.lock and the reports), never from what an apply did in memory,
so a later apply that commits an earlier, uncommitted result versions it too.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsctl.compile.layout import UseCasePaths
from mlopsctl.plan.hashing import file_md5
from mlopsctl.plan.state import AppliedState, LockedStage
from mlopsctl.spec.model import UseCase
from mlopsctl.spec.paths import read_json_object

#: the GTO stage an apply's deployment is assigned to: an mlopsctl repository deploys to one
#: environment, the one its main branch's apply serves (docs/usage.md, "Versions")
DEPLOY_STAGE = "prod"
#: the commit-message trailers that name the tags an apply commit gets (crash recovery reads them)
VERSION_TRAILER = "Mlopsctl-Version"
DEPLOY_TRAILER = "Mlopsctl-Deploy"

_NAME = r"[a-zA-Z0-9](?:[a-zA-Z0-9-/_]*[a-zA-Z0-9])?"
_SEMVER = (
    r"(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?"
)
_VERSION_TAG = re.compile(rf"^(?P<name>{_NAME})@(?P<version>v{_SEMVER})(?P<cancel>!?)(?:#\d+)?$")
_STAGE_TAG = re.compile(
    rf"^(?P<name>{_NAME})#(?P<stage>{_NAME})(?P<cancel>!?)(?:#(?P<counter>[0-9]+))?$"
)
_COUNTER = re.compile(rf"^(?P<name>{_NAME})[@#].*#(?P<counter>[0-9]+)$")
_MODEL_LINE = re.compile(r"^Model: \S+ md5:([0-9a-f]{32})$", re.M)
_INTERFACE_LINE = re.compile(r"^Interface: .*\(fingerprint ([0-9a-f]{12})\)$", re.M)


@dataclass(frozen=True)
class Tag:
    """One git tag as ``for-each-ref`` reports it."""

    name: str
    commit: str  # the commit it points at
    annotated: bool
    date: str  # the tagger date (ISO 8601), "" for a lightweight tag
    message: str


@dataclass(frozen=True)
class Version:
    """A registered model version: an annotated ``<name>@vX.Y.Z`` tag."""

    usecase: str
    version: str  # "v1.1.0"
    tag: str
    commit: str
    date: str
    message: str

    @property
    def key(self) -> tuple[int, int, int, int, str]:
        """SemVer order (a pre-release sorts before its release)."""
        m = _VERSION_TAG.match(self.tag)
        assert m is not None
        pre = m.group("pre") or ""
        return (int(m["major"]), int(m["minor"]), int(m["patch"]), 0 if pre else 1, pre)

    @property
    def model_md5(self) -> str | None:
        """The model md5 the tag message records (None for a tag mlopsctl did not write)."""
        m = _MODEL_LINE.search(self.message)
        return m.group(1) if m else None

    @property
    def interface(self) -> str | None:
        m = _INTERFACE_LINE.search(self.message)
        return m.group(1) if m else None


@dataclass(frozen=True)
class Assignment:
    """A GTO stage assignment (``<name>#<stage>#N``) or unassignment (``<name>#<stage>!#N``)."""

    usecase: str
    stage: str
    counter: int
    tag: str
    commit: str
    version: str | None  # the version registered at that commit, if any
    unassign: bool = False


def read_tags(root: Path) -> list[Tag]:
    """Every tag of the repository at *root* (one ``git for-each-ref``); [] outside git."""
    keys = ("refname:strip=2", "objecttype", "*objectname", "objectname", "taggerdate:iso-strict")
    fmt = "%00".join(f"%({k})" for k in keys) + "%00%(contents)%1e"
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "for-each-ref", f"--format={fmt}", "refs/tags"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    except OSError:
        return []
    if proc.returncode != 0:
        return []
    tags: list[Tag] = []
    for record in proc.stdout.split("\x1e"):
        fields = record.lstrip("\n").split("\x00")
        if len(fields) != 6:
            continue
        name, kind, peeled, obj, date, message = fields
        annotated = kind == "tag"
        tags.append(Tag(name, peeled if annotated else obj, annotated, date, message))
    return tags


def versions_from(tags: Sequence[Tag]) -> list[Version]:
    """The registrations among *tags*, by use case then SemVer.

    Lightweight tags are skipped, as GTO skips them; so are deregistrations (``@vX.Y.Z!``).
    """
    out = []
    for t in tags:
        m = _VERSION_TAG.match(t.name)
        if m and t.annotated and not m["cancel"]:
            out.append(Version(m["name"], m["version"], t.name, t.commit, t.date, t.message))
    return sorted(out, key=lambda v: (v.usecase, v.key))


def assignments_from(tags: Sequence[Tag], versions: Sequence[Version]) -> list[Assignment]:
    """The stage (un)assignments among *tags*, by use case then counter."""
    at_commit = {(v.usecase, v.commit): v.version for v in versions}
    out = []
    for t in tags:
        m = _STAGE_TAG.match(t.name)
        if not (m and t.annotated and m["counter"]):
            continue
        out.append(
            Assignment(
                m["name"],
                m["stage"],
                int(m["counter"]),
                t.name,
                t.commit,
                at_commit.get((m["name"], t.commit)),
                bool(m["cancel"]),
            )
        )
    return sorted(out, key=lambda a: (a.usecase, a.counter))


def read_versions(root: Path) -> list[Version]:
    """The model versions registered in the repository at *root*, by use case then SemVer."""
    return versions_from(read_tags(root))


def read_assignments(root: Path) -> list[Assignment]:
    """The stage assignments (deployments) in the repository at *root*, in GTO's order."""
    tags = read_tags(root)
    return assignments_from(tags, versions_from(tags))


def latest(versions: Sequence[Version], usecase: str) -> Version | None:
    """The greatest version of *usecase* (SemVer order), or None."""
    own = [v for v in versions if v.usecase == usecase]
    return max(own, key=lambda v: v.key) if own else None


def current_stages(assignments: Sequence[Assignment], usecase: str) -> dict[str, Assignment]:
    """Stage -> its current assignment for *usecase* (the last one, unless unassigned since)."""
    out: dict[str, Assignment] = {}
    for a in assignments:
        if a.usecase != usecase:
            continue
        if a.unassign:
            out.pop(a.stage, None)
        else:
            out[a.stage] = a
    return out


def next_version(previous: Version | None, interface: str | None) -> tuple[str, str]:
    """The version after *previous* for a new model with *interface*, and why."""
    if previous is None:
        return "v1.0.0", "first version"
    major, minor = previous.key[0], previous.key[1]
    if interface and previous.interface and previous.interface != interface:
        return f"v{major + 1}.0.0", f"major: the model's interface changed since {previous.version}"
    return f"v{major}.{minor + 1}.0", f"minor: a new model, same interface as {previous.version}"


# --- what the applied state holds ------------------------------------------------------------


@dataclass(frozen=True)
class ModelFacts:
    """What dvc.lock and the reports record for one use case's model."""

    usecase: str
    model_md5: str | None  # None: never trained
    gate: str  # passed | failed | unchecked (the recorded verdict is not for this model)
    interface: str | None = None  # fingerprint of problem, target and feature set
    interface_text: str = ""
    deployed_md5: str | None = None  # the model the recorded deploy stage deployed
    metrics: dict[str, Any] = field(default_factory=dict)
    checks: tuple[dict[str, Any], ...] = ()
    data: tuple[tuple[str, str], ...] = ()  # (path, md5): the snapshot, then each source file
    bundle_md5: str | None = None


def model_facts(root: Path, uc: UseCase, state: AppliedState) -> ModelFacts:
    """Read what the applied state records for *uc*: model, verdict, interface, data, deploy."""
    name = uc.metadata.name
    paths = UseCasePaths(name)
    train, evaluate, gate = (state.get(f"{name}_{s}") for s in ("train", "evaluate", "gate"))
    model = train.outs.get(paths.model) if train else None
    if model is None:
        return ModelFacts(name, None, "unchecked")
    verdict = read_json_object(root, paths.gate)
    # the verdict counts only when dvc.lock records it for this very model: a failed gate is
    # not recorded, and its verdict file on disk then belongs to the model train just made
    chained = (
        evaluate is not None
        and gate is not None
        and evaluate.deps.get(paths.model) == model
        and gate.deps.get(paths.metrics) == evaluate.outs.get(paths.metrics)
        and gate.outs.get(paths.gate) == file_md5(root / paths.gate)
    )
    passed = isinstance(verdict, dict) and verdict.get("passed") is True
    if chained and passed:
        word = "passed"
    elif isinstance(verdict, dict) and verdict.get("passed") is False:
        word = "failed"
    else:
        word = "unchecked"
    interface, text = interface_of(root, uc)
    deploy = state.get(f"{name}_deploy")
    checks = tuple(c for c in (verdict or {}).get("checks", []) if isinstance(c, dict))
    return ModelFacts(
        name,
        model,
        word,
        interface,
        text,
        deployed_md5=deploy.deps.get(paths.model) if deploy else None,
        metrics=read_json_object(root, paths.metrics) or {},
        checks=checks,
        data=tuple(data_hashes(uc, state)),
        bundle_md5=deploy.outs.get(paths.bundle) if deploy else None,
    )


def interface_of(root: Path, uc: UseCase) -> tuple[str | None, str]:
    """The fingerprint of the model's interface (problem, target, features) and its summary.

    From the training record (features as used, inferred or declared); None without one.
    """
    training = read_json_object(root, UseCasePaths(uc.metadata.name).training)
    if not training:
        return None, ""
    features = training.get("features")
    if not isinstance(features, dict):
        features = {}
    numeric = sorted(str(f) for f in features.get("numeric") or [])
    categorical = sorted(str(f) for f in features.get("categorical") or [])
    shape = {
        "problem": str(training.get("problem", uc.goal.problem)),
        "target": str(training.get("target", uc.goal.target)),
        "numeric": numeric,
        "categorical": categorical,
    }
    blob = json.dumps(shape, sort_keys=True, separators=(",", ":")).encode("utf-8")
    fp = hashlib.sha256(blob).hexdigest()[:12]
    text = (
        f"{shape['problem']}, target {shape['target']}, {len(numeric)} numeric and "
        f"{len(categorical)} categorical features"
    )
    return fp, text


def data_hashes(uc: UseCase, state: AppliedState) -> list[tuple[str, str]]:
    """(path, md5) of the data the recorded model came from: the snapshot, then source files."""
    name = uc.metadata.name
    paths = UseCasePaths(name)
    ingest = state.get(f"{name}_ingest")
    out = []
    if ingest is not None and ingest.outs.get(paths.snapshot):
        out.append((paths.snapshot, ingest.outs[paths.snapshot]))
    for src in uc.data.sources.values():
        md5 = _dep(ingest, src.path)
        if src.path and md5:
            out.append((src.path, md5))
    return out


def _dep(stage: LockedStage | None, path: str | None) -> str | None:
    if stage is None or not path:
        return None
    import posixpath

    return stage.deps.get(path) or stage.deps.get(posixpath.normpath(path))


# --- deciding the tags of an apply commit ----------------------------------------------------


@dataclass(frozen=True)
class NewTag:
    """A tag to create once the apply commit exists."""

    name: str
    message: str
    target: str | None = None  # a commit; None: the apply commit
    kind: str = "version"  # version | deploy

    @property
    def trailer(self) -> str:
        key = VERSION_TRAILER if self.kind == "version" else DEPLOY_TRAILER
        return f"{key}: {self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "message": self.message,
            "target": self.target,
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NewTag:
        return cls(str(d["name"]), str(d["message"]), d.get("target"), str(d.get("kind", "")))


@dataclass(frozen=True)
class VersionInfo:
    """One use case's version after this apply: what the model card and the summary show."""

    usecase: str
    version: str | None  # "v1.1.0": the version holding the recorded model
    tag: str | None
    new: bool = False  # created by this apply's commit
    why: str = ""  # how it was bumped, or why the model is not versioned
    deployed: dict[str, tuple[str, str]] = field(default_factory=dict)  # stage -> (version, tag)


def decide(
    root: Path,
    usecases: Sequence[UseCase],
    state: AppliedState,
    tags: Sequence[Tag],
    *,
    commit: bool,
) -> tuple[list[NewTag], dict[str, VersionInfo]]:
    """The tags the apply commit gets, and each use case's version.

    A use case gets a new version when the commit records a model whose gate verdict (recorded
    for that very model) passed and which differs from its latest version's model; a new
    deployment assignment when the model the recorded deploy stage deployed is a version that is
    not the stage's current one. Nothing is tagged when apply does not commit.
    """
    versions = versions_from(tags)
    assignments = assignments_from(tags, versions)
    counters: dict[str, int] = {}
    for t in tags:
        m = _COUNTER.match(t.name)
        if m:
            counters[m["name"]] = max(counters.get(m["name"], 0), int(m["counter"]))
    new: list[NewTag] = []
    info: dict[str, VersionInfo] = {}
    for uc in usecases:
        name = uc.metadata.name
        facts = model_facts(root, uc, state)
        last = latest(versions, name)
        holders = [v for v in versions if v.usecase == name and v.model_md5 == facts.model_md5]
        current: tuple[str, str, str | None] | None = None  # version, tag, commit (None: new)
        if facts.model_md5 is None:
            vi = VersionInfo(name, None, None, why="not versioned: no model has been trained yet")
        elif not re.fullmatch(_NAME, name):
            why = f"not versioned: GTO's tag names cannot end with '{name[-1]}'"
            vi = VersionInfo(name, None, None, why=why)
        elif last is not None and last.model_md5 == facts.model_md5:
            vi = VersionInfo(name, last.version, last.tag)
            current = (last.version, last.tag, last.commit)
        elif facts.gate == "passed" and commit:
            version, why = next_version(last, facts.interface)
            tag = f"{name}@{version}"
            new.append(NewTag(tag, version_message(uc, facts, version, why)))
            vi = VersionInfo(name, version, tag, new=True, why=why)
            current = (version, tag, None)
        elif holders:
            older = max(holders, key=lambda v: v.key)
            vi = VersionInfo(name, older.version, older.tag)
            current = (older.version, older.tag, older.commit)
        else:
            vi = VersionInfo(name, None, None, why=_why_not(facts, commit))
        deployed = _deployment(name, facts, versions, current)
        stages = {
            s: (a.version or a.commit[:10], a.tag)
            for s, a in current_stages(assignments, name).items()
        }
        moved = DEPLOY_STAGE not in stages or stages[DEPLOY_STAGE][0] != (deployed or ("",))[0]
        if deployed is not None and moved and commit:
            counters[name] = counters.get(name, 0) + 1
            tag = f"{name}#{DEPLOY_STAGE}#{counters[name]}"
            message = deploy_message(uc, facts, deployed[0])
            new.append(NewTag(tag, message, deployed[2], kind="deploy"))
            stages[DEPLOY_STAGE] = (deployed[0], tag)
        info[name] = VersionInfo(vi.usecase, vi.version, vi.tag, vi.new, vi.why, stages)
    return new, info


def _deployment(
    name: str,
    facts: ModelFacts,
    versions: Sequence[Version],
    current: tuple[str, str, str | None] | None,
) -> tuple[str, str, str | None] | None:
    """(version, tag, commit) of the model the recorded deploy stage deployed, if versioned."""
    if facts.deployed_md5 is None:
        return None
    if current is not None and facts.deployed_md5 == facts.model_md5:
        return current
    holders = [v for v in versions if v.usecase == name and v.model_md5 == facts.deployed_md5]
    if not holders:
        return None
    v = max(holders, key=lambda v: v.key)
    return v.version, v.tag, v.commit


def _why_not(facts: ModelFacts, commit: bool) -> str:
    if facts.gate == "failed":
        return "not versioned: the quality gate failed"
    if facts.gate == "unchecked":
        return "not versioned: the quality gate has not passed for this model"
    if not commit:
        return "not versioned: this apply does not commit (versions are tags on apply commits)"
    return "not versioned"


# --- tag messages -----------------------------------------------------------------------------


def fmt_number(value: Any) -> str:
    """A metric as text: 6 significant digits, the same on every machine."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def gate_text(facts: ModelFacts) -> str:
    """``passed (f1=0.986111 >= 0.9; roc_auc=0.99537 >= 0.95)``."""
    parts = []
    for c in facts.checks:
        bounds = []
        if c.get("min") is not None:
            bounds.append(f">= {fmt_number(c['min'])}")
        if c.get("max") is not None:
            bounds.append(f"<= {fmt_number(c['max'])}")
        parts.append(f"{c.get('metric')}={fmt_number(c.get('value'))} {' and '.join(bounds)}")
    return f"{facts.gate} ({'; '.join(parts)})" if parts else facts.gate


def version_message(uc: UseCase, facts: ModelFacts, version: str, why: str) -> str:
    """The annotation of a version tag: deterministic, one ``Key: value`` per line."""
    paths = UseCasePaths(uc.metadata.name)
    lines = [
        f"{uc.metadata.name} {version}: gate {facts.gate}",
        "",
        f"Model: {paths.model} md5:{facts.model_md5}",
    ]
    if facts.interface:
        lines.append(f"Interface: {facts.interface_text} (fingerprint {facts.interface})")
    lines += [f"Data: {path} md5:{md5}" for path, md5 in facts.data]
    metrics = " ".join(f"{k}={fmt_number(v)}" for k, v in sorted(facts.metrics.items()))
    lines.append(f"Metrics: {metrics or 'none'}")
    lines.append(f"Gate: {gate_text(facts)}")
    lines.append(f"Bump: {why}")
    return "\n".join(lines) + "\n"


def deploy_message(uc: UseCase, facts: ModelFacts, version: str) -> str:
    """The annotation of a stage-assignment tag."""
    paths = UseCasePaths(uc.metadata.name)
    d = uc.deploy
    where = (
        f"rest http://{d.rest.host}:{d.rest.port}"
        if d.target == "rest"
        else f"batch -> {d.batch.output if d.batch else ''}"
    )
    lines = [
        f"{uc.metadata.name} {version} deployed to {DEPLOY_STAGE}",
        "",
        f"Target: {where}",
        f"Model: {paths.model} md5:{facts.deployed_md5}",
    ]
    if facts.bundle_md5:
        lines.append(f"Bundle: {paths.bundle} md5:{facts.bundle_md5}")
    return "\n".join(lines) + "\n"


def with_trailers(message: str, new: Sequence[NewTag]) -> str:
    """*message* with the tag trailers of *new*, replacing any it held.

    A message merged from an interrupted apply's may hold that apply's trailers; they are
    dropped, because :func:`decide` recomputes the tags from the state this commit records.
    """
    keep = [
        ln
        for ln in message.rstrip("\n").split("\n")
        if not ln.startswith((f"{VERSION_TRAILER}:", f"{DEPLOY_TRAILER}:"))
    ]
    return "\n".join(keep + [t.trailer for t in new]) + "\n"


def trailer_tags(message: str) -> set[str]:
    """The tag names an apply commit's message says it gets."""
    out = set()
    for ln in message.splitlines():
        key, sep, value = ln.partition(": ")
        if sep and key in (VERSION_TRAILER, DEPLOY_TRAILER) and value.strip():
            out.add(value.split()[0])
    return out
