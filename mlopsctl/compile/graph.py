"""Spec -> Graph: every use case becomes pure-data Stage descriptions joined into one DAG.

Edges are derived, as in Kedro and DVC, from outputs that other stages depend on; nothing
declares an edge by hand. A stage's params are exactly the spec keys its kind reads, so a
change to a key re-runs only the stages that read it.
"""

from __future__ import annotations

import graphlib
import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mlopsctl.compile.environment import environment
from mlopsctl.compile.layout import MONITORING_BREACH, MONITORING_FILES, UseCasePaths
from mlopsctl.compile.shell import shell_command
from mlopsctl.errors import MlopsctlError
from mlopsctl.spec.model import Project, UseCase, UseCaseFile

KIND_DESCRIPTIONS = {
    "ingest": "load the data sources, join them, snapshot to Parquet",
    "validate": "check the snapshot against data.checks",
    "split": "split into train and test sets",
    "train": "fit the preprocessing and estimator",
    "evaluate": "score the model on the test set",
    "gate": "check the goal metrics (the quality gate)",
    "deploy": "write the deployment bundle (and score the batch input)",
    "monitor": "check the current batch against the training reference (drift, quality)",
    "custom": "custom stage",
}


@dataclass(frozen=True)
class Stage:
    """One node of the DAG. Pure data: what runs, what it reads, what it writes."""

    usecase: str
    name: str  # "train", or a custom stage's name
    kind: str  # a built-in kind or "custom"
    cmd: str
    params_file: str  # the use-case file its params are keys of
    params: tuple[str, ...] = ()  # dotted keys of params_file, each present in the file
    deps: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()  # DVC-cached outputs (artifacts)
    reports: tuple[str, ...] = ()  # outputs committed to git (cache: false)
    metrics: tuple[str, ...] = ()  # metrics files (cache: false)
    plots: tuple[str, ...] = ()  # plot files (cache: false)
    always_changed: bool = False
    env: Mapping[str, str] = field(default_factory=dict)  # library versions it depends on
    env_vars: tuple[str, ...] = ()  # ${env:NAME} a custom cmd reads: must be set when it runs
    note: str = ""  # shown after the plan's reasons, e.g. the deploy target "rest 127.0.0.1:8080"
    remote: str = ""  # the use case's own DVC remote (infra.remote), "" for the project's

    @property
    def id(self) -> str:
        return f"{self.usecase}/{self.name}"

    @property
    def dvc_name(self) -> str:
        """The stage's name in dvc.yaml (DVC allows only '-' and '_' as punctuation)."""
        return f"{self.usecase}_{self.name}"

    @property
    def all_outs(self) -> tuple[str, ...]:
        return (*self.outs, *self.reports, *self.metrics, *self.plots)

    @property
    def cached_outs(self) -> frozenset[str]:
        return frozenset(self.outs)


@dataclass(frozen=True)
class Graph:
    """The compiled DAG: stages by id and their upstream ids, in a stable topological order."""

    stages: Mapping[str, Stage]
    upstream: Mapping[str, tuple[str, ...]]
    order: tuple[str, ...]

    def __iter__(self) -> Iterator[Stage]:
        return (self.stages[i] for i in self.order)

    def __len__(self) -> int:
        return len(self.order)

    def downstream(self, stage_id: str) -> tuple[str, ...]:
        return tuple(i for i in self.order if stage_id in self.upstream[i])

    def usecases(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for st in self:
            seen.setdefault(st.usecase, None)
        return tuple(seen)

    def only(self, usecases: set[str]) -> Graph:
        """The subgraph of the given use cases (a new Graph; this one is unchanged)."""
        keep = {i for i, st in self.stages.items() if st.usecase in usecases}
        return Graph(
            stages={i: self.stages[i] for i in keep},
            upstream={i: tuple(u for u in self.upstream[i] if u in keep) for i in keep},
            order=tuple(i for i in self.order if i in keep),
        )


class GraphError(MlopsctlError):
    """The stages cannot form a DAG (a cycle, or two stages writing the same file)."""


def compile_project(project: Project) -> Graph:
    stages: list[Stage] = []
    own = project.usecase_remotes()
    for ucf in project.usecases:
        remote = own.get(ucf.name, "")
        stages.extend(replace(st, remote=remote) for st in compile_usecase(ucf))
    return link(stages)


def compile_usecase(ucf: UseCaseFile) -> list[Stage]:
    uc = ucf.spec
    paths = UseCasePaths(uc.name)
    doc = ucf.document
    file = ucf.path

    def present(*keys: str) -> tuple[str, ...]:
        return tuple(k for k in keys if _has_key(doc, k))

    def cmd(kind: str, extra: str = "") -> str:
        return f"mlopsctl run-stage {uc.name}/{kind}{extra}"

    custom_before: dict[str, list[str]] = {}
    for cs in uc.stages:
        if cs.before is not None:
            custom_before.setdefault(cs.before, []).extend(cs.outs)

    def deps(kind: str, *own: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*own, *custom_before.get(kind, ()))))

    source_paths = tuple(
        posixpath.normpath(s.path) for s in uc.data.sources.values() if s.path is not None
    )
    has_sql = any(s.format == "sql" for s in uc.data.sources.values())
    train_params = [
        "goal.problem",
        "goal.target",
        "data.features",
        "data.join",
        "data.split",
        "model",
    ]
    if uc.model.tuning is not None and uc.model.tuning.scoring is None:
        train_params.append("goal.primary_metric")  # the default scoring is the primary metric
    train_deps = [paths.train_set]
    current = _current_path(uc)
    if uc.monitoring is not None and uc.monitoring.retrain_with_current:
        # train on the training set plus the current batch: it reads both keys then
        train_params += ["monitoring.current", "monitoring.retrain_with_current"]
        if current is not None:
            train_deps.append(current)
    env = environment()
    env_arg = " --env '" + " ".join(f"{k}={v}" for k, v in sorted(env.items())) + "'"

    built = [
        Stage(
            uc.name,
            "ingest",
            "ingest",
            cmd("ingest"),
            file,
            params=present("data.sources", "data.join"),
            deps=deps("ingest", *source_paths),
            outs=(paths.snapshot,),
            always_changed=has_sql,
        ),
        Stage(
            uc.name,
            "validate",
            "validate",
            cmd("validate"),
            file,
            params=present("goal.target", "data.features", "data.checks"),
            deps=deps("validate", paths.snapshot),
            reports=(paths.validation,),
        ),
        Stage(
            uc.name,
            "split",
            "split",
            cmd("split"),
            file,
            params=present("goal.problem", "goal.target", "data.split"),
            deps=deps("split", paths.snapshot, paths.validation),
            outs=(paths.train_set, paths.test_set),
        ),
        Stage(
            uc.name,
            "train",
            "train",
            cmd("train", env_arg),
            file,
            params=present(*train_params),
            deps=deps("train", *train_deps),
            outs=(paths.model, paths.signature, paths.reference_profile),
            reports=(paths.training,),
            env=env,
        ),
        Stage(
            uc.name,
            "evaluate",
            "evaluate",
            cmd("evaluate"),
            file,
            params=present("goal.problem", "goal.target"),
            deps=deps("evaluate", paths.model, paths.test_set),
            metrics=(paths.metrics,),
            plots=paths.plot_files(uc.goal.problem),
        ),
        Stage(
            uc.name,
            "gate",
            "gate",
            cmd("gate"),
            file,
            params=present("goal.metrics", "goal.primary_metric"),
            deps=deps("gate", paths.metrics),
            reports=(paths.gate,),
        ),
    ]
    deploy = _deploy_stage(ucf, paths, present("deploy"), deps)
    if deploy is not None:
        built.append(deploy)
        if any(cs.name == "deploy" for cs in uc.stages):
            raise GraphError(
                f"{file}: stages: a custom stage of '{uc.name}' is named 'deploy', which is the "
                f"built-in deploy stage of target {uc.deploy.target}; rename it"
            )
    if uc.monitoring is not None:
        if any(cs.name == "monitor" for cs in uc.stages):
            raise GraphError(
                f"{file}: stages: a custom stage of '{uc.name}' is named 'monitor', which is the "
                "built-in monitor stage (monitoring: is set); rename it"
            )
        built.append(
            Stage(
                uc.name,
                "monitor",
                "monitor",
                cmd("monitor"),
                file,
                params=present("monitoring"),
                deps=deps(
                    "monitor",
                    *((current,) if current else ()),
                    paths.model,
                    paths.reference_profile,
                ),
                reports=tuple(
                    paths.monitoring_file(n) for n in (*MONITORING_FILES, MONITORING_BREACH)
                ),
            )
        )
    for cs in uc.stages:
        built.append(
            Stage(
                uc.name,
                cs.name,
                "custom",
                shell_command(cs.cmd)[0],  # ${env:NAME} -> the shell's $NAME, never its value
                file,
                deps=deps(cs.name, *(posixpath.normpath(d) for d in cs.deps)),
                outs=tuple(posixpath.normpath(o) for o in cs.outs),
                metrics=tuple(posixpath.normpath(m) for m in cs.metrics),
                env_vars=shell_command(cs.cmd)[1],
            )
        )
    return built


def _current_path(uc: UseCase) -> str | None:
    """The monitoring batch's file (monitoring.current.path), normalised, or None."""
    if uc.monitoring is None or uc.monitoring.current.path is None:
        return None
    return posixpath.normpath(uc.monitoring.current.path)


def _deploy_stage(
    ucf: UseCaseFile,
    paths: UseCasePaths,
    params: tuple[str, ...],
    deps: Any,
) -> Stage | None:
    """The deploy stage (targets batch and rest), after the gate; its params are deploy.* only.

    It depends on the gate's verdict, so a gate that did not pass blocks it and the previous
    bundle stays in place; on the train and test sets only to record their hashes.
    """
    uc = ucf.spec
    target = uc.deploy.target
    if target not in ("batch", "rest"):
        return None
    own = [
        paths.model,
        paths.signature,
        paths.reference_profile,
        paths.training,
        paths.metrics,
        paths.gate,
        paths.train_set,
        paths.test_set,
    ]
    outs = [paths.bundle]
    always_changed = False
    if target == "batch" and uc.deploy.batch is not None:
        batch = uc.deploy.batch
        if batch.input.path is not None:
            own.append(posixpath.normpath(batch.input.path))
        always_changed = batch.input.format == "sql"  # cannot be hashed before it is read
        outs.append(posixpath.normpath(batch.output))
        note = f"batch -> {posixpath.normpath(batch.output)}"
    else:
        note = f"rest {uc.deploy.rest.host}:{uc.deploy.rest.port}"
    return Stage(
        uc.name,
        "deploy",
        "deploy",
        f"mlopsctl run-stage {uc.name}/deploy",
        ucf.path,
        params=params,
        deps=deps("deploy", *own),
        outs=tuple(outs),
        always_changed=always_changed,
        note=note,
    )


def link(stages: list[Stage]) -> Graph:
    """Derive edges from outputs and dependencies; reject clashes and cycles."""
    producer: dict[str, str] = {}
    by_id: dict[str, Stage] = {}
    for st in stages:
        by_id[st.id] = st
        for out in st.all_outs:
            if out in producer:
                raise GraphError(f"'{out}' is an output of both {producer[out]} and {st.id}")
            producer[out] = st.id
    upstream: dict[str, tuple[str, ...]] = {}
    for st in stages:
        ups: dict[str, None] = {}
        for dep in st.deps:
            p = producer.get(dep) or _producer_of_parent(dep, producer)
            if p is not None and p != st.id:
                ups[p] = None
        upstream[st.id] = tuple(ups)
    sorter = graphlib.TopologicalSorter(upstream)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise GraphError(f"the stages form a cycle: {cycle}") from exc
    # Stable order: Kahn's algorithm, ready stages in declaration order.
    position = {st.id: i for i, st in enumerate(stages)}
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order.extend(ready)
        sorter.done(*ready)
    return Graph(stages=by_id, upstream=upstream, order=tuple(order))


def _producer_of_parent(dep: str, producer: Mapping[str, str]) -> str | None:
    # a dependency inside a directory output depends on that directory's stage
    parent = posixpath.dirname(dep)
    while parent:
        if parent in producer:
            return producer[parent]
        parent = posixpath.dirname(parent)
    return None


def _has_key(doc: Mapping[str, Any], dotted: str) -> bool:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def get_key(doc: Mapping[str, Any], dotted: str) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        node = node[part]
    return node


__all__ = ["Graph", "GraphError", "Stage", "compile_project", "compile_usecase", "get_key", "link"]
_ = UseCase
