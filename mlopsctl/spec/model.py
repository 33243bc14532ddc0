"""The typed model: frozen dataclasses built from a schema-validated document.

The JSON Schemas in ``mlopsctl/schemas`` are the source of truth; these classes only give the
rest of the code typed access and the defaults. ``tests/unit/test_model_schema.py`` proves that
both describe the same keys. Field names follow the YAML keys (``api_version`` <-> ``apiVersion``
is the single rename, declared with ``metadata={"key": ...}``).
"""

from __future__ import annotations

import dataclasses
import functools
import posixpath
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mlopsctl.errors import MlopsctlError, did_you_mean

BUILTIN_STAGE_KINDS = ("ingest", "validate", "split", "train", "evaluate", "gate")

#: goal metrics per problem kind; errors (lower is better) are bounded with ``max``.
METRICS = {
    "binary_classification": ("roc_auc", "accuracy", "f1", "precision", "recall", "log_loss"),
    "multiclass_classification": ("accuracy", "f1_macro", "f1_weighted", "log_loss"),
    "regression": ("rmse", "mae", "r2", "mape"),
}
ERROR_METRICS = frozenset({"log_loss", "rmse", "mae", "mape"})


def module_allowed(module: str, allowed: Iterable[str]) -> bool:
    """Whether *module* is one of the *allowed* modules (allowed_estimator_modules) or inside one.

    The one check of allowed_estimator_modules: ``validate``, train's import of the estimator and
    the model loader all ask it.
    """
    return any(module == a or module.startswith(a + ".") for a in allowed)


def _key(name: str) -> dict[str, str]:
    return {"key": name}


@dataclass(frozen=True)
class Source:
    """A data source (``data.sources.NAME``, a batch input, monitoring's current data)."""

    format: str
    path: str | None = None
    url: str | None = None
    query: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Join:
    """``data.join[i]``: join source *right* onto *left* on the key column(s)."""

    left: str
    right: str
    on: str | tuple[str, ...]
    how: str = "left"

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.on,) if isinstance(self.on, str) else tuple(self.on)


@dataclass(frozen=True)
class Features:
    """``data.features``: the columns the model sees, by kind, and those dropped."""

    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Bound:
    """A closed interval; either end may be open-ended (None)."""

    min: float | None = None
    max: float | None = None

    def holds(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " and ".join(parts)


@dataclass(frozen=True)
class Checks:
    """``data.checks``: what the validate stage requires of the joined data."""

    min_rows: int | None = None
    max_missing: float | None = None
    unique: tuple[str, ...] = ()
    ranges: Mapping[str, Bound] = field(default_factory=dict)
    allowed: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Split:
    """``data.split``: how the data is split into train and test sets."""

    method: str = "random"
    test_size: float = 0.2
    stratify: bool = False
    seed: int = 42
    column: str | None = None
    cutoff: str | None = None


@dataclass(frozen=True)
class Data:
    """``data``: sources, joins, features, checks and the split."""

    sources: Mapping[str, Source]
    join: tuple[Join, ...] = ()
    features: Features | None = None
    checks: Checks = field(default_factory=Checks)
    split: Split = field(default_factory=Split)


@dataclass(frozen=True)
class Goal:
    """``goal``: the problem, the label and the acceptance metrics of the quality gate."""

    problem: str
    target: str
    metrics: Mapping[str, Bound]
    objective: str = ""
    primary_metric: str | None = None

    @property
    def primary(self) -> str:
        return self.primary_metric or next(iter(self.metrics))


@dataclass(frozen=True)
class Preprocessing:
    """``model.preprocessing``: scaling, encoding and imputation ahead of the estimator."""

    numeric: str = "standard"
    categorical: str = "onehot"
    impute: str = "median"


@dataclass(frozen=True)
class Tuning:
    """``model.tuning``: a cross-validated search over estimator params."""

    method: str
    params: Mapping[str, tuple[Any, ...]]
    cv: int = 5
    scoring: str | None = None
    n_iter: int = 10


@dataclass(frozen=True)
class Model:
    """``model``: the scikit-learn estimator, its params, preprocessing and tuning."""

    estimator: str
    params: Mapping[str, Any] = field(default_factory=dict)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    tuning: Tuning | None = None


@dataclass(frozen=True)
class DaskConfig:
    """``infra.dask``: the dask.distributed scheduler the stages run on, and optionally the
    fsspec URL their inputs and outputs move through (workers without the repository)."""

    scheduler: str
    n_workers: int | None = None
    storage: str | None = None


@dataclass(frozen=True)
class Infra:
    """``infra``: where the stages run (executor, threads, DVC remote)."""

    executor: str = "local"
    dask: DaskConfig | None = None
    n_jobs: int = 1
    remote: str | None = None


@dataclass(frozen=True)
class Rest:
    """``deploy.rest``: the REST service's address, body limit and token."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_mb: float = 1.0
    token: str | None = None  # "${env:NAME}", resolved by `mlopsctl serve`


@dataclass(frozen=True)
class Batch:
    """``deploy.batch``: batch scoring of an input source into an output file."""

    input: Source
    output: str


@dataclass(frozen=True)
class Deploy:
    """``deploy``: the deploy target after the gate passes (none, batch or REST)."""

    target: str = "none"
    rest: Rest = field(default_factory=Rest)
    batch: Batch | None = None


@dataclass(frozen=True)
class Drift:
    """``monitoring.drift``: the drift test, its threshold and the features it watches."""

    method: str = "psi"
    threshold: float = 0.2
    features: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DataQuality:
    """``monitoring.data_quality``: what new data must satisfy."""

    max_missing: float | None = None


@dataclass(frozen=True)
class Monitoring:
    """``monitoring``: the checks on new data and what a breach does."""

    current: Source
    drift: Drift = field(default_factory=Drift)
    data_quality: DataQuality = field(default_factory=DataQuality)
    performance: Mapping[str, Bound] = field(default_factory=dict)
    on_breach: str = "alert"
    retrain_with_current: bool = False


@dataclass(frozen=True)
class CustomStage:
    """``stages[i]``: a user's own command with its dependencies and outputs."""

    name: str
    cmd: str
    deps: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    before: str | None = None


@dataclass(frozen=True)
class Metadata:
    """``metadata``: the use case's name, description, owners and labels."""

    name: str
    description: str = ""
    owners: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UseCase:
    """One use-case file: goal, data, model, infra, deploy, monitoring, custom stages."""

    api_version: str = field(metadata=_key("apiVersion"))
    kind: str
    metadata: Metadata
    goal: Goal
    data: Data
    model: Model
    infra: Infra = field(default_factory=Infra)
    deploy: Deploy = field(default_factory=Deploy)
    monitoring: Monitoring | None = None
    stages: tuple[CustomStage, ...] = ()

    @property
    def name(self) -> str:
        return self.metadata.name


@dataclass(frozen=True)
class ProjectDefaults:
    """``defaults`` of mlopsctl.yaml: what every use case inherits."""

    infra: Infra = field(default_factory=Infra)


@dataclass(frozen=True)
class ProjectConfig:
    """mlopsctl.yaml: where the use cases are, the remote, commit policy and defaults."""

    api_version: str = field(metadata=_key("apiVersion"))
    kind: str
    usecases: tuple[str, ...] = ("usecases/*.yaml",)
    remote: str | None = None
    commit: bool = True
    defaults: ProjectDefaults = field(default_factory=ProjectDefaults)
    allowed_estimator_modules: tuple[str, ...] = ("sklearn",)


@dataclass(frozen=True)
class UseCaseFile:
    """A use case together with where it came from and its raw document (for params diffs)."""

    path: str  # relative to the project root, POSIX separators
    spec: UseCase
    document: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.spec.metadata.name


@dataclass(frozen=True)
class Project:
    """A loaded project: its root, config and use cases (in file order)."""

    root: Path
    config: ProjectConfig
    usecases: tuple[UseCaseFile, ...]

    def usecase(self, name: str) -> UseCaseFile:
        for uc in self.usecases:
            if uc.name == name:
                return uc
        raise KeyError(name)

    def own_remote(self, name: str) -> str | None:
        """The DVC remote use case *name* pushes to when it is not the project's: its
        ``infra.remote`` (or the defaults'), None when that is unset or the project's own."""
        return self._own_remote_of(self.usecase(name))

    def _own_remote_of(self, ucf: UseCaseFile) -> str | None:
        remote = ucf.spec.infra.remote
        return remote if remote and remote != self.config.remote else None

    def usecase_remotes(self) -> dict[str, str]:
        """Use case name -> its own DVC remote (see :meth:`own_remote`), for those with one."""
        out = {}
        for ucf in self.usecases:
            remote = self._own_remote_of(ucf)
            if remote is not None:
                out[ucf.name] = remote
        return out

    def own_remotes(self) -> dict[str, list[str]]:
        """Each use-case-own DVC remote (see :meth:`own_remote`) -> the use cases naming it."""
        out: dict[str, list[str]] = {}
        for name, remote in self.usecase_remotes().items():
            out.setdefault(remote, []).append(name)
        return out

    def source_remotes(self) -> dict[str, str]:
        """The data sources whose every user has the same own remote: path -> that remote.

        A source's ``.dvc`` file names one remote (DVC's per-output ``remote:``); a source that
        use cases of different remotes share names none, goes to the project's remote, and is
        also pushed to each user's own remote.
        """
        users: dict[str, set[str | None]] = {}
        for ucf in self.usecases:
            for src in ucf.spec.data.sources.values():
                if src.path is not None:
                    path = posixpath.normpath(src.path)
                    users.setdefault(path, set()).add(self._own_remote_of(ucf))
        out = {}
        for path, remotes in users.items():
            only = next(iter(remotes)) if len(remotes) == 1 else None
            if only is not None:
                out[path] = only
        return out

    def require_usecases(self, names: Iterable[str]) -> None:
        """Raise one clear error for the first of *names* (a -u selection) the project lacks."""
        known = [uc.name for uc in self.usecases]
        for name in names:
            if name not in known:
                hint = did_you_mean(name, known)
                raise MlopsctlError(
                    f"unknown use case '{name}'"
                    + (f" ({hint})" if hint else "")
                    + f"; the project has: {', '.join(known)}"
                )


# --- building from validated documents -------------------------------------------------------

T = TypeVar("T")


def yaml_key(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("key", f.name))


def build(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build dataclass *cls* from a schema-valid mapping, recursing by type hints."""
    kwargs = {}
    for name, key, convert in _field_converters(cls):  # type: ignore[arg-type]
        if key in data:
            kwargs[name] = convert(data[key])
    return cls(**kwargs)


@functools.cache
def _fields(cls: type[Any]) -> tuple[tuple[str, str, Any], ...]:
    """(field name, YAML key, resolved type hint) per field; resolving hints is slow."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, yaml_key(f), hints[f.name]) for f in dataclasses.fields(cls))


@functools.cache
def _field_converters(cls: type[Any]) -> tuple[tuple[str, str, Callable[[Any], Any]], ...]:
    """(field name, YAML key, converter) per field: the type hints are read once per class,
    not once per value (a 1,000-stage use case has ~7,000 values)."""
    return tuple((name, key, _converter(hint)) for name, key, hint in _fields(cls))  # type: ignore[arg-type]


def _identity(value: Any) -> Any:
    return value


def _to_float(value: Any) -> Any:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


@functools.cache
def _converter(tp: Any) -> Callable[[Any], Any]:
    """The function that turns a schema-valid value into type *tp* (built once per hint)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        alternatives = [(a, _converter(a)) for a in typing.get_args(tp) if a is not type(None)]

        def union(value: Any) -> Any:
            if value is None:
                return None
            for arg, convert in alternatives:  # first alternative whose shape fits
                if _fits(arg, value):
                    return convert(value)
            return value

        return union
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        cls = tp
        return lambda value: build(cls, value)  # resolved at call time: no recursion here
    if origin is tuple:
        item = _converter(typing.get_args(tp)[0])
        return lambda value: tuple(item(v) for v in value)
    if origin in (Mapping, dict, typing.Mapping):
        vt = _converter(typing.get_args(tp)[1])
        return lambda value: {k: vt(v) for k, v in value.items()}
    if tp is float:
        return _to_float
    return _identity


def _fits(tp: Any, value: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is tuple:
        return isinstance(value, list | tuple)
    if dataclasses.is_dataclass(tp) or origin in (Mapping, dict):
        return isinstance(value, Mapping)
    if isinstance(tp, type):
        return isinstance(value, tp) or (tp is float and isinstance(value, int))
    return True
