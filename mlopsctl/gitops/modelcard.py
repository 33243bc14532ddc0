"""The model card: ``reports/<name>/model_card.md``, written by apply and committed with it.

One markdown page per use case, from values only: the spec, dvc.lock (as plain YAML), the
reports the stages wrote, the version tags (:mod:`mlopsctl.gitops.versions`) and the monitoring
verdict. It holds no clock time, so the same inputs give the same bytes and an apply that
changed nothing leaves it untouched. It is no DVC output: ``plan`` never looks at it.

"Built from commit" is the commit apply started from when it trained the model (the parent of
the apply commit that first held it): the code and specs the model came from. A later apply
keeps it while the model's md5 stays the same, so a forced re-run of the same inputs writes the
same card.
"""

from __future__ import annotations

import csv
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlopsctl.compile.environment import parse_env_arg
from mlopsctl.compile.layout import UseCasePaths
from mlopsctl.fsutil import atomic_write
from mlopsctl.gitops.versions import (
    ModelFacts,
    VersionInfo,
    fmt_number,
    model_facts,
)
from mlopsctl.plan.monitoring import read_breach, read_verdict
from mlopsctl.plan.state import AppliedState
from mlopsctl.spec.model import Bound, Source, UseCase
from mlopsctl.spec.paths import UnsafePathError, inside_repo, read_json_object

CARD = "model_card.md"
_DISTRIBUTIONS = {"sklearn": "scikit-learn"}
_BUILT_FROM = re.compile(r"^- Built from commit: `([0-9a-f]{40})`", re.M)
_CARD_MODEL = re.compile(r"^- Model: `[^`]+` md5 `([0-9a-f]{32})`", re.M)


def card_path(name: str) -> str:
    """Where the model card of use case *name* lives, relative to the repository."""
    return f"{UseCasePaths(name).reports}/{CARD}"


def write_cards(
    root: Path,
    usecases: Sequence[UseCase],
    state: AppliedState,
    infos: Mapping[str, VersionInfo],
    head: str | None,
    removed: Sequence[str] = (),
) -> list[str]:
    """Write the card of every trained use case whose text changed; drop those of *removed*.

    Returns the cards written or removed (repository-relative).
    """
    changed = []
    for uc in usecases:
        facts = model_facts(root, uc, state)
        if facts.model_md5 is None:
            continue  # nothing trained yet: nothing to describe
        rel = card_path(uc.metadata.name)
        path = root / rel
        inside_repo(root, rel)  # a committed symlink (reports/NAME -> /etc) must not lead out
        old = path.read_text("utf-8") if path.is_file() and not path.is_symlink() else ""
        built_from = _kept_built_from(old, facts.model_md5) or head
        info = infos.get(uc.metadata.name) or VersionInfo(uc.metadata.name, None, None)
        text = render(root, uc, state, facts, info, built_from)
        if text != old:
            if path.is_symlink():  # a committed symlink must not lead the write out of the repo
                path.unlink()
            atomic_write(path, text)
            changed.append(rel)
    for name in removed:
        path = root / card_path(name)
        inside_repo(root, card_path(name))
        if path.is_file() or path.is_symlink():
            path.unlink()
            changed.append(card_path(name))
    return changed


def _kept_built_from(old: str, model_md5: str) -> str | None:
    """The commit the previous card names, when it described the same model."""
    model = _CARD_MODEL.search(old)
    built = _BUILT_FROM.search(old)
    if model and built and model.group(1) == model_md5:
        return built.group(1)
    return None


def render(
    root: Path,
    uc: UseCase,
    state: AppliedState,
    facts: ModelFacts,
    info: VersionInfo,
    built_from: str | None,
) -> str:
    """The card's markdown text."""
    name = uc.metadata.name
    paths = UseCasePaths(name)
    training = read_json_object(root, paths.training) or {}
    validation = read_json_object(root, paths.validation) or {}
    out: list[str] = [f"# Model card: {name}", ""]
    out += [
        "<!-- Written by `mlopsctl apply` from the spec, dvc.lock, the reports and the version "
        "tags; edits are overwritten. -->",
        "",
    ]
    if uc.metadata.description:
        out += [uc.metadata.description, ""]

    g = uc.goal
    out += _section("Goal")
    out += [
        f"- Problem: {g.problem}",
        f"- Target: `{g.target}`",
        f"- Objective: {g.objective or '(not stated)'}",
        f"- Primary metric: {g.primary_metric or '(none)'}",
        f"- Owners: {', '.join(uc.metadata.owners) or '(none)'}",
    ]
    if uc.metadata.labels:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(uc.metadata.labels.items()))
        out.append(f"- Labels: {labels}")

    out += _section("Version")
    if info.version:
        out.append(f"- Version: {info.version} (git tag `{info.tag}`)")
    else:
        out.append(f"- Version: {info.why}")
    out.append(f"- Model: `{paths.model}` md5 `{facts.model_md5}`")
    if facts.interface:
        out.append(f"- Interface: {facts.interface_text} (fingerprint {facts.interface})")
    if built_from:
        out.append(
            f"- Built from commit: `{built_from}` (what HEAD was when apply trained this model)"
        )
    else:
        out.append("- Built from commit: none (the repository had no commit yet)")

    out += _section("Data")
    out += _data(root, uc, state, validation, facts)

    out += _section("Features")
    out += _features(uc, training)

    out += _section("Estimator")
    out += _estimator(uc, training)

    out += _section("Metrics against the goal")
    out += _metrics(uc, facts)

    out += _section("Quality gate")
    verdict = {
        "passed": "passed: every bound of the goal holds",
        "failed": "failed: nothing is deployed and the model is not versioned",
        "unchecked": "not checked for this model",
    }[facts.gate]
    out.append(f"- Verdict: {verdict}")

    out += _section("Deployment")
    out += _deployment(uc, info, facts)

    out += _section("Monitoring")
    out += _monitoring(root, uc)

    out += _section("Environment")
    out += _environment(uc, state, training)
    lines: list[str] = []
    for line in out:  # one blank line between blocks, whatever each block starts with
        if line or (lines and lines[-1]):
            lines.append(line)
    return "\n".join(lines).rstrip("\n") + "\n"


def _section(title: str) -> list[str]:
    return ["", f"## {title}", ""]


def _data(
    root: Path,
    uc: UseCase,
    state: AppliedState,
    validation: dict[str, Any],
    facts: ModelFacts,
) -> list[str]:
    paths = UseCasePaths(uc.metadata.name)
    hashes = dict(facts.data)
    snapshot_rows = validation.get("rows") if isinstance(validation.get("rows"), int) else None
    single = len(uc.data.sources) == 1 and not uc.data.join
    out = ["| source | format | location | md5 | rows |", "| --- | --- | --- | --- | --- |"]
    for key, src in sorted(uc.data.sources.items()):
        md5 = hashes.get(posixpath.normpath(src.path)) if src.path else None
        if md5 is None:
            md5 = hashes.get(src.path or "")
        rows = snapshot_rows if single else _source_rows(root, src, md5)
        shown = f"`{md5}`" if md5 else _no_hash(src)
        counted = rows if rows is not None else "not counted"
        out.append(f"| {key} | {src.format} | {_location(src)} | {shown} | {counted} |")
    out.append("")
    snap = hashes.get(paths.snapshot)
    cols = validation.get("columns")
    shape = f", {snapshot_rows} rows" if snapshot_rows is not None else ""
    shape += f", {cols} columns" if isinstance(cols, int) else ""
    out.append(f"- Snapshot: `{paths.snapshot}` md5 `{snap or 'not recorded'}`{shape}")
    for j in uc.data.join:
        on = j.on if isinstance(j.on, str) else ", ".join(j.on)
        out.append(f"- Join: {j.left} {j.how} join {j.right} on {on}")
    s = uc.data.split
    how = (
        f"time, on {s.column}, cutoff {s.cutoff}"
        if s.method == "time"
        else f"random, test size {fmt_number(s.test_size)}"
        + (", stratified" if s.stratify else "")
        + f", seed {s.seed}"
    )
    metrics = facts.metrics
    training = read_json_object(root, paths.training) or {}
    counts = []
    if isinstance(training.get("n_train"), int):
        counts.append(f"{training['n_train']} training rows")
    if isinstance(metrics.get("n_test"), int):
        counts.append(f"{metrics['n_test']} test rows")
    out.append(f"- Split: {how}" + (f": {', '.join(counts)}" if counts else ""))
    passed = validation.get("passed")
    if passed is not None:
        out.append(f"- Data checks: {'passed' if passed else 'failed'}")
    return out


def _location(src: Source) -> str:
    if src.path:
        return f"`{src.path}`"
    if src.format == "sklearn":
        return f"`{src.name}` (bundled with scikit-learn)"
    return "SQL query"  # never the URL: it may carry credentials


def _no_hash(src: Source) -> str:
    if src.format == "sql":
        return "read at apply time (the snapshot's md5 is the data's)"
    if src.format == "sklearn":
        return "bundled (the snapshot's md5 is the data's)"
    return "not recorded"


def _source_rows(root: Path, src: Source, md5: str | None) -> int | None:
    """Row count of one source file of a join (a single source is counted by validation)."""
    if not src.path or md5 is None:
        return None
    try:
        path = inside_repo(root, src.path)
        if not path.is_file():
            return None
        if src.format == "parquet":
            import pyarrow.parquet as pq

            return int(pq.read_metadata(path).num_rows)
        if src.format == "csv":
            with path.open("r", encoding="utf-8", newline="") as fh:
                return max(sum(1 for _ in csv.reader(fh)) - 1, 0)
    except (OSError, ValueError, csv.Error, ImportError, UnsafePathError):
        return None
    return None


def _features(uc: UseCase, training: dict[str, Any]) -> list[str]:
    feats = training.get("features") if isinstance(training.get("features"), dict) else None
    if feats is None:
        declared = uc.data.features
        if declared is None:
            return ["- not recorded (no training record)"]
        feats = {
            "numeric": list(declared.numeric),
            "categorical": list(declared.categorical),
            "dropped": list(declared.drop),
            "inferred": False,
        }
    how = "inferred from the data" if feats.get("inferred") else "declared in the spec"
    out = [f"Features are {how}.", ""]
    for kind in ("numeric", "categorical", "dropped"):
        names = [str(n) for n in feats.get(kind) or []]
        listed = ", ".join(f"`{n}`" for n in names) if names else "none"
        out.append(f"- {kind.capitalize()} ({len(names)}): {listed}")
    return out


def _estimator(uc: UseCase, training: dict[str, Any]) -> list[str]:
    m = uc.model
    p = m.preprocessing
    out = [
        f"- Estimator: `{m.estimator}`",
        f"- Params set in the spec: {_kv(m.params) or 'none (the defaults)'}",
        f"- Preprocessing: numeric {p.numeric}, categorical {p.categorical}, impute {p.impute}",
    ]
    if m.tuning is None:
        out.append("- Tuning: none")
    else:
        t = m.tuning
        grid = "; ".join(f"{k}: {list(v)}" for k, v in sorted(t.params.items()))
        out.append(
            f"- Tuning: {t.method} search, {t.cv}-fold, scoring {t.scoring or 'default'}, "
            f"over {grid}"
        )
        tuning = training.get("tuning")
        if isinstance(tuning, dict) and isinstance(tuning.get("best_params"), dict):
            best = _kv(tuning["best_params"])
            score = tuning.get("best_score")
            out.append(f"- Chosen by tuning: {best} (score {fmt_number(score)})")
    effective = training.get("params")
    if isinstance(effective, dict):
        out.append(f"- Effective params: {_kv(effective)}")
    return out


def _metrics(uc: UseCase, facts: ModelFacts) -> list[str]:
    out = ["| metric | value | bound | holds |", "| --- | --- | --- | --- |"]
    for name, bound in sorted(uc.goal.metrics.items()):
        value = facts.metrics.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            shown, holds = fmt_number(value), "yes" if bound.holds(value) else "no"
        else:
            shown, holds = "missing", "no"
        out.append(f"| {name} | {shown} | {_bound(bound)} | {holds} |")
    others = {k: v for k, v in facts.metrics.items() if k not in uc.goal.metrics}
    if others:
        listed = ", ".join(f"{k}={fmt_number(v)}" for k, v in sorted(others.items()))
        out += ["", f"Other metrics: {listed}"]
    return out


def _bound(b: Bound) -> str:
    parts = []
    if b.min is not None:
        parts.append(f">= {fmt_number(b.min)}")
    if b.max is not None:
        parts.append(f"<= {fmt_number(b.max)}")
    return " and ".join(parts) or "none"


def _deployment(uc: UseCase, info: VersionInfo, facts: ModelFacts) -> list[str]:
    d = uc.deploy
    if d.target == "rest":
        out = [f"- Target: rest, `http://{d.rest.host}:{d.rest.port}` (`mlopsctl serve`)"]
    elif d.target == "batch" and d.batch is not None:
        where = d.batch.input.path or d.batch.input.format
        out = [f"- Target: batch, scores `{where}` into `{d.batch.output}`"]
    else:
        out = ["- Target: none (the pipeline ends at the gate)"]
    for stage, (version, tag) in sorted(info.deployed.items()):
        out.append(f"- Deployed to {stage}: {version} (git tag `{tag}`)")
    if d.target != "none" and not info.deployed:
        out.append("- Deployed: not yet (no deployment tag)")
    if facts.deployed_md5 and facts.deployed_md5 != facts.model_md5:
        out.append(f"- The bundle holds an earlier model (md5 `{facts.deployed_md5}`)")
    return out


def _monitoring(root: Path, uc: UseCase) -> list[str]:
    mon = uc.monitoring
    if mon is None:
        return ["- Not configured"]
    out = [
        f"- Current batch: {_location(mon.current)}",
        f"- Drift: {mon.drift.method}, threshold {fmt_number(mon.drift.threshold)}"
        + (f", on {', '.join(mon.drift.features)}" if mon.drift.features else ", every feature"),
    ]
    if mon.data_quality.max_missing is not None:
        out.append(f"- Data quality: max missing {fmt_number(mon.data_quality.max_missing)}")
    for name, bound in sorted(mon.performance.items()):
        out.append(f"- Performance: {name} {_bound(bound)}")
    out.append(
        f"- On breach: {mon.on_breach}"
        + (", retraining with the current batch" if mon.retrain_with_current else "")
    )
    paths = UseCasePaths(uc.metadata.name)
    doc = read_verdict(root, paths)
    if doc is None or not isinstance(doc.get("breach"), bool):
        out.append("- Last verdict: not checked yet")
    elif not doc["breach"]:
        out.append("- Last verdict: ok (no threshold broken)")
    else:
        breach = read_breach(root, paths)
        out.append("- Last verdict: breach")
        out += [f"  - {r}" for r in (breach.reasons if breach else ())]
    return out


def _environment(uc: UseCase, state: AppliedState, training: dict[str, Any]) -> list[str]:
    """The versions train ran with: its pinned command in dvc.lock, then its own record."""
    env: dict[str, str] = {}
    train = state.get(f"{uc.metadata.name}_train")
    if train is not None and "--env '" in train.cmd:
        env.update(parse_env_arg(train.cmd.split("--env '", 1)[1].split("'", 1)[0]))
    versions = training.get("versions")
    if isinstance(versions, dict):
        for k, v in versions.items():
            # train records import names; the pinned command, distribution names
            env.setdefault(_DISTRIBUTIONS.get(str(k), str(k)), str(v))
    if not env:
        return ["- not recorded"]
    return ["| package | version |", "| --- | --- |"] + [
        f"| {k} | {v} |" for k, v in sorted(env.items())
    ]


def _kv(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v, sort_keys=True)}" for k, v in sorted(values.items()))
