"""Decide, per stage, whether apply runs it, restores it from cache, or leaves it alone.

Inputs: the compiled Graph, the applied state (dvc.lock) and the workspace (file hashes from
the stat-keyed cache). The rules are DVC's (command, params, dependency and output hashes), but
decided here, before anything runs, and with a reason for each verdict. Never imports pandas,
scikit-learn, DVC or the user's estimator, and never runs user code.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlopsctl import __version__
from mlopsctl.compile.environment import environment, parse_env_arg
from mlopsctl.compile.graph import Graph, Stage, get_key
from mlopsctl.compile.layout import MONITORING_BREACH, UseCasePaths
from mlopsctl.plan import runcache
from mlopsctl.plan.hashing import HashCache
from mlopsctl.plan.model import (
    Action,
    Plan,
    PlanInputs,
    Reason,
    RemotePlan,
    SourcePlan,
    StagePlan,
)
from mlopsctl.plan.monitoring import pending_retrain
from mlopsctl.plan.state import AppliedState, LockedStage
from mlopsctl.spec.model import Project

_MISSING = object()


def short(md5: str | None) -> str:
    return (md5 or "none")[:7]


def make_plan(
    project: Project,
    graph: Graph,
    state: AppliedState,
    hashes: HashCache,
    *,
    force: bool = False,
    usecases: tuple[str, ...] = (),
    whole: Graph | None = None,
) -> Plan:
    """Decide every stage of *graph* in topological order, then the stages to remove.

    *whole*: the project's graph when *graph* is a selection (``-u``): apply writes dvc.yaml
    for every use case, so a remote move of any of them is part of the plan.
    """
    ctx = _Planning(project, graph, state, hashes, force)
    for st in graph:
        ctx.plans[st.id] = ctx.decide(st)
    removed = [] if usecases else _removed(graph, state)
    documents = ctx.documents
    inputs = PlanInputs(
        lock_md5=hashlib.md5(state.raw, usedforsecurity=False).hexdigest(),
        spec_md5={p: hashes.md5(p) or "" for p in ["mlopsctl.yaml", *sorted(documents)]},
        data_md5=ctx.data_md5,
        environment=environment(),
        mlopsctl_version=__version__,
        force=force,
        usecases=usecases,
    )
    sources = _changed_sources(project, graph, ctx.producer, hashes)
    hashes.save()
    return Plan(
        stages=tuple(ctx.plans[i] for i in graph.order) + tuple(removed),
        inputs=inputs,
        sources=sources,
        remotes=moved_remotes(project, whole or graph, state),
    )


class _Planning:
    """What deciding one stage needs to know of the stages decided before it."""

    def __init__(
        self,
        project: Project,
        graph: Graph,
        state: AppliedState,
        hashes: HashCache,
        force: bool,
    ) -> None:
        self.project = project
        self.root = project.root
        self.state = state
        self.hashes = hashes
        # one observation per path and plan: a stage's output is the next one's dependency, and
        # both verdicts must see the same file (and stat it once)
        self._seen: dict[str, str | None] = {}
        self.force = force
        self.documents = {uc.path: uc.document for uc in project.usecases}
        self.producer = {out: st.id for st in graph for out in st.all_outs}
        self.applied_usecases = {name.split("_", 1)[0] for name in state.stages}
        self.expected: dict[str, str | None] = {}  # out -> md5 after apply (None: unknown)
        self.plans: dict[str, StagePlan] = {}
        self.data_md5: dict[str, str] = {}

    def md5(self, rel: str) -> str | None:
        if rel not in self._seen:
            self._seen[rel] = self.hashes.md5(rel)
        return self._seen[rel]

    def decide(self, st: Stage) -> StagePlan:
        locked = self.state.get(st.dvc_name)
        reasons = self._own_reasons(st, locked)
        dep_now, dep_after, ups_running = self._dependencies(st)
        reasons += self._dep_reasons(st, locked, dep_now, dep_after)
        reasons += self._upstream_reasons(ups_running, reasons)
        reasons += self._out_reasons(st, locked)
        action, restore = _decide(self.root, st, locked, reasons, dep_after, self.documents)
        # inputs produced by an upstream that runs first are unknown until it has run
        conditional = (
            action is Action.RUN
            and not self.force
            and not st.always_changed
            and any(v is None for v in dep_after.values())
            and all(dep_now[d] is not None or d in self.producer for d in st.deps)
        )
        self._expect(st, locked, action, restore)
        return StagePlan(
            id=st.id,
            usecase=st.usecase,
            name=st.name,
            kind=st.kind,
            dvc_name=st.dvc_name,
            action=action,
            reasons=tuple(reasons),
            restore=restore,
            conditional=conditional,
            note=st.note,
            runs_on=self._runs_on(st.usecase),
        )

    def _runs_on(self, usecase: str) -> str:
        """Where apply runs the use case's stages, when not in this machine's process pool."""
        infra = self.project.usecase(usecase).spec.infra
        if infra.executor == "dask" and infra.dask is not None:
            where = f"dask {infra.dask.scheduler}"  # as written: ${env:NAME} is read by apply
            # a reviewer sees where apply will upload the stages' inputs
            storage = infra.dask.storage
            return f"{where} via {storage}" if storage else where
        return ""

    def _own_reasons(self, st: Stage, locked: LockedStage | None) -> list[Reason]:
        """--force, never applied, command and params."""
        reasons: list[Reason] = []
        if self.force:
            reasons.append(Reason("forced", "forced (--force)"))
        if locked is None:
            if st.usecase not in self.applied_usecases:
                reasons.append(Reason("new-usecase", "new use case"))
            else:
                reasons.append(Reason("new-stage", "never applied"))
        else:
            reasons.extend(_cmd_reasons(st, locked))
            reasons.extend(_param_reasons(st, locked, self.documents[st.params_file]))
        if st.kind == "train":
            reasons.extend(_breach_reasons(self.project, st))
        if st.always_changed:
            reasons.append(
                Reason("always-changed", "always runs (its source cannot be hashed before reading)")
            )
        return reasons

    def _dependencies(
        self, st: Stage
    ) -> tuple[dict[str, str | None], dict[str, str | None], list[str]]:
        """What the workspace holds now, what it will hold once upstream applies, who runs."""
        dep_now: dict[str, str | None] = {}
        dep_after: dict[str, str | None] = {}
        ups_running: list[str] = []
        for dep in st.deps:
            now = self.md5(dep)
            dep_now[dep] = now
            p = self.producer.get(dep)
            if p is None:
                self.data_md5[dep] = now or ""
                dep_after[dep] = now
            else:
                dep_after[dep] = self.expected.get(dep, now)
                if self.plans[p].action in (Action.RUN, Action.BLOCKED):
                    ups_running.append(p)
        return dep_now, dep_after, ups_running

    def _dep_reasons(
        self,
        st: Stage,
        locked: LockedStage | None,
        dep_now: Mapping[str, str | None],
        dep_after: Mapping[str, str | None],
    ) -> list[Reason]:
        producer = self.producer
        reasons: list[Reason] = []
        if locked is None:
            return [
                Reason("dep-missing", f"{d} does not exist", d)
                for d in st.deps
                if dep_now[d] is None and d not in producer
            ]
        for dep in st.deps:
            old = locked.deps.get(dep)
            now, after = dep_now[dep], dep_after[dep]
            if old is None:
                reasons.append(Reason("dep", f"new dependency {dep}", dep, None, short(now)))
            elif dep in producer and self.plans[producer[dep]].action in (
                Action.RUN,
                Action.BLOCKED,
            ):
                continue  # reported once as "upstream changed"
            elif now != old and after == old:
                reasons.append(
                    Reason(
                        "dep-restored",
                        f"{dep} {'missing' if now is None else 'modified'}; upstream "
                        f"{producer.get(dep, '?')} restores it",
                        dep,
                        short(old),
                        short(now),
                    )
                )
            elif now is None and dep not in producer:
                reasons.append(
                    Reason("dep-missing", f"{dep} does not exist", dep, short(old), None)
                )
            elif after != old:
                reasons.append(
                    Reason(
                        "dep",
                        f"{dep} changed ({short(old)} -> {short(after)})",
                        dep,
                        short(old),
                        short(after),
                    )
                )
        for dep in sorted(set(locked.deps) - set(st.deps)):
            reasons.append(
                Reason("dep", f"dependency {dep} removed", dep, short(locked.deps[dep]), None)
            )
        return reasons

    def _upstream_reasons(self, ups_running: list[str], reasons: list[Reason]) -> list[Reason]:
        new = any(r.kind in ("new-usecase", "new-stage") for r in reasons)
        running = list(dict.fromkeys(ups_running))
        blocked = [p for p in running if self.plans[p].action is Action.BLOCKED]
        changed = [p for p in running if p not in blocked]
        out = []
        if blocked:
            names = ", ".join(self.plans[p].name for p in blocked)
            out.append(Reason("upstream-blocked", f"upstream {names} blocked", ",".join(blocked)))
        if changed and not new:
            names = ", ".join(self.plans[p].name for p in changed)
            out.append(Reason("upstream", f"upstream {names} changed", ",".join(changed)))
        return out

    def _out_reasons(self, st: Stage, locked: LockedStage | None) -> list[Reason]:
        """Outputs present and as recorded?"""
        if locked is None:
            return []
        out: list[Reason] = []
        for path in st.all_outs:
            old = locked.outs.get(path)
            now = self.md5(path)
            if old is None:
                out.append(Reason("out-missing", f"new output {path}", path))
            elif now is None:
                out.append(Reason("out-missing", f"output {path} missing", path, short(old), None))
            elif now != old:
                out.append(
                    Reason(
                        "out-modified",
                        f"output {path} modified ({short(old)} -> {short(now)})",
                        path,
                        short(old),
                        short(now),
                    )
                )
        for path in sorted(set(locked.outs) - set(st.all_outs)):
            out.append(Reason("out-missing", f"output {path} no longer declared", path))
        return out

    def _expect(
        self,
        st: Stage,
        locked: LockedStage | None,
        action: Action,
        restore: Mapping[str, str],
    ) -> None:
        """Record what the stage's outputs will hold after apply, for its downstream."""
        if action in (Action.RUN, Action.BLOCKED):
            for path in st.all_outs:
                self.expected[path] = None
        elif action is Action.RESTORE:
            self.expected.update(restore)
        else:
            for path in st.all_outs:
                self.expected[path] = locked.outs.get(path) if locked else self.md5(path)


def _removed(graph: Graph, state: AppliedState) -> list[StagePlan]:
    """Stages applied before whose use case or stage is gone from the specs."""
    compiled = {st.dvc_name for st in graph}
    removed = []
    for name in sorted(set(state.stages) - compiled):
        uc, _, stage = name.partition("_")
        removed.append(
            StagePlan(
                id=f"{uc}/{stage}",
                usecase=uc,
                name=stage,
                kind="removed",
                dvc_name=name,
                action=Action.REMOVE,
                reasons=(Reason("removed", "no longer in the specs: its outputs are removed"),),
            )
        )
    return removed


def _changed_sources(
    project: Project, graph: Graph, producer: Mapping[str, str], hashes: HashCache
) -> tuple[SourcePlan, ...]:
    """DVC-tracked data sources of the planned use cases whose file differs from its .dvc."""
    out: list[SourcePlan] = []
    for path in data_sources(project, graph):
        if path in producer:
            continue
        recorded = dvcfile_md5(project.root / f"{path}.dvc")
        now = hashes.md5(path)
        if recorded is not None and now is not None and recorded != now:
            out.append(SourcePlan(path, recorded, now))
    return tuple(out)


def moved_remotes(project: Project, graph: Graph, state: AppliedState) -> tuple[RemotePlan, ...]:
    """The use cases of *graph* whose DVC-cached outputs dvc.yaml names another remote than
    their spec does (``infra.remote``): apply rewrites dvc.yaml and their ``.dvc`` files and
    pushes there, with no stage to run, so the plan must say so."""
    own = project.usecase_remotes()
    wanted = {name: own.get(name, "") for name in graph.usecases()}
    written = _dvc_yaml_remotes(project.root)
    named: dict[str, set[str]] = {}
    if written is None:  # dvc.yaml names no remote: each applied use case is on the project's
        named = {st.usecase: {""} for st in graph if state.get(st.dvc_name) is not None}
    else:
        for st in graph:
            outs = written.get(st.dvc_name, {})
            for path in st.cached_outs & outs.keys():
                named.setdefault(st.usecase, set()).add(outs[path])
    return tuple(
        RemotePlan(name, ", ".join(sorted(named[name])), wanted[name])
        for name in wanted
        if name in named and named[name] != {wanted[name]}
    )


#: what dvc.yaml names, with the stat of the file it was read from
_REMOTES_CACHE = ".mlopsctl/dvcyaml-remotes.json"
#: dvc.yaml larger than this is not read for its remotes (mlopsctl writes ~160 bytes a stage)
_MAX_DVC_YAML = 64 << 20


def _dvc_yaml_remotes(root: Path) -> dict[str, dict[str, str]] | None:
    """dvc.yaml's stages -> their cached outputs -> the remote each names ("" = none); None when
    the file names no remote at all (it is then not parsed), {} when there is no such file.

    Read once per version of the file (a stat-keyed copy, like dvc.lock's); a dvc.yaml that is
    not a regular file inside the repository is not read (apply replaces it whole)."""
    import json
    import stat

    from mlopsctl.fsutil import atomic_write
    from mlopsctl.spec.cache import stat_key
    from mlopsctl.spec.paths import UnsafePathError, inside_repo

    try:
        path = inside_repo(root, "dvc.yaml")
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_DVC_YAML:
            return {}
        key = stat_key(path)
        cache = inside_repo(root, _REMOTES_CACHE)
        cached = json.loads(cache.read_text("utf-8")) if cache.is_file() else {}
        if key is not None and cached.get("stat") == key and "stages" in cached:
            found = cached["stages"]
            return None if found is None else {str(k): dict(v) for k, v in found.items()}
        raw = path.read_bytes()
    except (OSError, ValueError, AttributeError, KeyError, TypeError, UnsafePathError):
        return {}
    written = _parse_dvc_yaml_remotes(raw) if b"remote:" in raw else None
    with contextlib.suppress(OSError, TypeError, ValueError, UnsafePathError):
        inside_repo(root, _REMOTES_CACHE)
        record = {"stat": key, "stages": written}
        atomic_write(root / _REMOTES_CACHE, json.dumps(record), durable=False)
    return written


def _parse_dvc_yaml_remotes(raw: bytes) -> dict[str, dict[str, str]]:
    import yaml

    from mlopsctl.spec.yaml12 import Loader

    try:
        data = yaml.load(raw, Loader=Loader)
    except (yaml.YAMLError, ValueError):
        return {}
    stages = data.get("stages") if isinstance(data, dict) else None
    out: dict[str, dict[str, str]] = {}
    for name, entry in stages.items() if isinstance(stages, dict) else ():
        outs = entry.get("outs") if isinstance(entry, dict) else None
        for item in outs if isinstance(outs, list) else ():
            one = isinstance(item, dict) and len(item) == 1
            path, flags = next(iter(item.items())) if one else (item, {})
            flags = flags if isinstance(flags, dict) else {}
            if isinstance(path, str) and flags.get("cache", True) is not False:
                out.setdefault(str(name), {})[path] = str(flags.get("remote") or "")
    return out


def data_sources(project: Project, graph: Graph) -> list[str]:
    """The data files (data.sources paths) of the use cases in *graph*, each once."""
    paths: dict[str, None] = {}
    for name in graph.usecases():
        for src in project.usecase(name).spec.data.sources.values():
            if src.path is not None:
                paths[posixpath.normpath(src.path)] = None
    return list(paths)


def dvcfile_md5(path: Path) -> str | None:
    """The md5 a single-output ``.dvc`` file records, or None (no file, or not one we read)."""
    import stat

    import yaml

    try:
        st = path.lstat()  # a symlink may point outside the repository: never follow it
        if not stat.S_ISREG(st.st_mode) or st.st_size > 1 << 20:
            return None
        data = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None
    outs = data.get("outs") if isinstance(data, dict) else None
    if not isinstance(outs, list) or len(outs) != 1 or not isinstance(outs[0], dict):
        return None
    md5 = outs[0].get("md5")
    return str(md5) if md5 else None


def _decide(
    root: Path,
    st: Stage,
    locked: LockedStage | None,
    reasons: list[Reason],
    dep_after: Mapping[str, str | None],
    documents: Mapping[str, Mapping[str, Any]],
) -> tuple[Action, dict[str, str]]:
    acting = [r for r in reasons if r.kind != "dep-restored"]
    if not acting:
        return Action.SKIP, {}
    if any(r.kind in ("dep-missing", "upstream-blocked") for r in acting):
        return Action.BLOCKED, {}
    kinds = {r.kind for r in acting}
    if kinds & {"forced", "always-changed", "monitoring-breach"}:
        return Action.RUN, {}
    # Only outputs are off: bring back what dvc.lock recorded, from the cache.
    if locked is not None and kinds <= {"out-missing", "out-modified"}:
        restorable = set(locked.outs) == set(st.all_outs) and all(
            runcache.find_object(root, md5) for md5 in locked.outs.values()
        )
        return (Action.RESTORE, dict(locked.outs)) if restorable else (Action.RUN, {})
    # Something the result depends on changed: seen this exact input before?
    if any(v is None for v in dep_after.values()):
        return Action.RUN, {}
    outs = runcache.lookup(root, stage_fingerprint(st, dep_after, documents[st.params_file]))
    if outs is not None and set(outs) == set(st.all_outs):
        return Action.RESTORE, outs
    return Action.RUN, {}


def stage_fingerprint(
    st: Stage, deps: Mapping[str, str | None], document: Mapping[str, Any]
) -> str:
    params = {k: get_key(document, k) for k in st.params}
    return runcache.fingerprint(
        st.cmd, {k: v or "" for k, v in deps.items()}, params, list(st.all_outs)
    )


def _breach_reasons(project: Project, st: Stage) -> list[Reason]:
    """Retrain for a monitoring breach recorded with ``on_breach: retrain`` and not yet answered
    by a training (plan/monitoring.py)."""
    mon = project.usecase(st.usecase).spec.monitoring
    if mon is None or mon.on_breach != "retrain":
        return []
    paths = UseCasePaths(st.usecase)
    breach = pending_retrain(project.root, paths)
    if breach is None:
        return []
    where = paths.monitoring_file(MONITORING_BREACH)
    return [Reason("monitoring-breach", breach.summary, where, None, breach.id[:7])]


def _cmd_reasons(st: Stage, locked: LockedStage) -> list[Reason]:
    if locked.cmd == st.cmd:
        return []
    old_env = _env_of(locked.cmd)
    if st.env and old_env is not None:
        changed = [
            Reason("env", f"environment: {k} {old_env.get(k, 'none')} -> {v}", k, old_env.get(k), v)
            for k, v in sorted(st.env.items())
            if old_env.get(k) != v
        ]
        if changed:
            return changed
    return [Reason("cmd", "command changed", "", locked.cmd, st.cmd)]


def _env_of(cmd: str) -> dict[str, str] | None:
    marker = " --env '"
    if marker not in cmd:
        return None
    return parse_env_arg(cmd.split(marker, 1)[1].rstrip("'"))


def _param_reasons(st: Stage, locked: LockedStage, document: Mapping[str, Any]) -> list[Reason]:
    old_params = locked.params.get(st.params_file, {})
    out: list[Reason] = []
    for key in st.params:
        new = get_key(document, key)
        old = old_params.get(key, _MISSING)
        if old is _MISSING:
            out.append(Reason("param", f"{key}: (default) -> {_show(new)}", key, None, new))
            continue
        for path, a, b in _diff(key, old, new):
            out.append(Reason("param", f"{path}: {_show(a)} -> {_show(b)}", path, a, b))
    for key in sorted(set(old_params) - set(st.params)):
        out.append(
            Reason(
                "param", f"{key}: {_show(old_params[key])} -> (default)", key, old_params[key], None
            )
        )
    for f in sorted(set(locked.params) - {st.params_file}):
        out.append(Reason("param", f"params of {f} no longer read", f))
    return out


def _diff(path: str, old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[tuple[str, Any, Any]] = []
        for k in sorted(set(old) | set(new), key=str):
            out.extend(_diff(f"{path}.{k}", old.get(k, _MISSING), new.get(k, _MISSING)))
        return out
    if _same(old, new):
        return []
    return [(path, None if old is _MISSING else old, None if new is _MISSING else new)]


def _same(a: Any, b: Any) -> bool:
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    return bool(a == b)


def _show(value: Any) -> str:
    if value is None or value is _MISSING:
        return "(unset)"
    if isinstance(value, str):
        return value
    import json

    try:
        return json.dumps(value, sort_keys=True, default=str)
    except TypeError:  # keys of mixed types cannot be sorted
        return json.dumps(value, default=str)
