"""deploy: write the deployment bundle and, for ``target: batch``, score the batch input.

The bundle (``artifacts/<name>/deploy/``, one DVC-tracked directory) is what `mlopsctl serve`
loads: the model (the same canonical skops file train wrote), its input signature, the training
reference profile that monitoring compares live data with, and ``manifest.json`` (use case,
version = the model's content hash, git commit, data hashes, metrics, gate verdict, creation
time, versions). The deploy stage runs only after a passed gate; it checks the verdict itself
too, so that no route (``dvc repro`` included) deploys a model that failed it.

Batch scoring checks the input against the signature first and fails with every problem listed;
the previous output stays in place because nothing lands unless the stage succeeds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import posixpath
from pathlib import Path
from typing import Any

from mlopsctl import __version__
from mlopsctl.compile.layout import (
    BUNDLE_MANIFEST,
    BUNDLE_MODEL,
    BUNDLE_PROFILE,
    BUNDLE_SIGNATURE,
)
from mlopsctl.errors import StageFailedError
from mlopsctl.integrations.git import head_sha
from mlopsctl.plan.hashing import file_md5
from mlopsctl.stages.base import StageContext, atomic_write_bytes, write_json
from mlopsctl.stages.modelio import load_model
from mlopsctl.stages.scoring import Scores, Signature, check_frame, predict

MANIFEST_FORMAT = 1
#: the batch output's extra columns
PREDICTION_COLUMN = "prediction"
VERSION_COLUMN = "model_version"
PROBABILITY_PREFIX = "probability_"


def run(ctx: StageContext) -> dict[str, Any]:
    paths = ctx.paths
    verdict = _read_json(ctx, paths.gate, "the gate verdict")
    if verdict.get("passed") is not True:
        raise StageFailedError(
            f"the quality gate of '{ctx.usecase.name}' did not pass ({paths.gate}): nothing is "
            "deployed and the previous deployment stays in place"
        )
    model_bytes = _read_bytes(ctx, paths.model)
    version = model_version(model_bytes)
    # load it as `serve` will: a bundle that cannot be loaded is never published
    model = load_model(
        ctx.input(paths.model),
        ctx.usecase.model.estimator,
        allowed_modules=ctx.allowed_estimator_modules,
    )
    signature = Signature.load(ctx.input(paths.signature))

    bundle = paths.bundle
    atomic_write_bytes(ctx.output(posixpath.join(bundle, BUNDLE_MODEL)), model_bytes)
    atomic_write_bytes(
        ctx.output(posixpath.join(bundle, BUNDLE_SIGNATURE)), _read_bytes(ctx, paths.signature)
    )
    # the training reference profile (train writes it), for monitoring the deployed model
    atomic_write_bytes(
        ctx.output(posixpath.join(bundle, BUNDLE_PROFILE)),
        _read_bytes(ctx, paths.reference_profile),
    )

    summary: dict[str, Any] = {"version": version, "target": ctx.usecase.deploy.target}
    if ctx.usecase.deploy.target == "batch":
        summary.update(score_batch(ctx, model, signature, version))
    else:
        rest = ctx.usecase.deploy.rest
        summary["endpoint"] = f"http://{rest.host}:{rest.port}"

    manifest = build_manifest(ctx, version, verdict)
    staged = ctx.staging / bundle
    manifest["files"] = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(staged.iterdir())
        if p.is_file()
    }
    write_json(ctx.output(posixpath.join(bundle, BUNDLE_MANIFEST)), manifest)
    return summary


def model_version(model_bytes: bytes) -> str:
    """The model's version: a prefix of the sha256 of its (canonical, reproducible) file."""
    return hashlib.sha256(model_bytes).hexdigest()[:12]


def build_manifest(ctx: StageContext, version: str, verdict: dict[str, Any]) -> dict[str, Any]:
    """What was deployed, from what, when, and with which versions (no secret, ever)."""
    paths = ctx.paths
    uc = ctx.usecase
    training = _read_json(ctx, paths.training, "the training record")
    metrics = _read_json(ctx, paths.metrics, "the metrics")
    data = {
        "train": file_md5(ctx.input(paths.train_set)),
        "test": file_md5(ctx.input(paths.test_set)),
    }
    batch = uc.deploy.batch
    if uc.deploy.target == "batch" and batch is not None and batch.input.path:
        data["batch_input"] = file_md5(ctx.input(batch.input.path))
    manifest: dict[str, Any] = {
        "format_version": MANIFEST_FORMAT,
        "usecase": uc.name,
        "version": version,
        "model_sha256": hashlib.sha256(_read_bytes(ctx, paths.model)).hexdigest(),
        "problem": uc.goal.problem,
        "estimator": training.get("estimator"),
        "git_commit": ctx.git_head or head_sha(ctx.root),
        "data_md5": data,
        "metrics": metrics,
        "gate": verdict,
        "created_at": _created_at(),
        "target": uc.deploy.target,
        "versions": {
            "mlopsctl": __version__,
            "python": platform.python_version(),
            "trained_with": training.get("versions", {}),
        },
    }
    if uc.deploy.target == "rest":
        rest = uc.deploy.rest
        # the token's reference (`${env:NAME}`) only: the value is read by `serve` at start
        manifest["rest"] = {
            "host": rest.host,
            "port": rest.port,
            "max_body_mb": rest.max_body_mb,
            "token": rest.token,
        }
    elif batch is not None:
        manifest["batch"] = {"output": posixpath.normpath(batch.output)}
    return manifest


# --- batch scoring ----------------------------------------------------------------------------


def score_batch(
    ctx: StageContext, model: Any, signature: Signature, version: str
) -> dict[str, Any]:
    """Score ``deploy.batch.input`` into ``deploy.batch.output``; every input problem at once."""
    from mlopsctl.stages.ingest import read_source

    batch = ctx.usecase.deploy.batch
    if batch is None:  # the schema requires it with target batch
        raise StageFailedError("deploy.batch is required with target: batch")
    frame = read_source(ctx, "deploy.batch.input", batch.input)
    model_input, problems = check_frame(signature, frame)
    where = batch.input.path or batch.input.format
    if problems:
        listed = "\n".join(f"  {p}" for p in problems)
        raise StageFailedError(
            f"the batch input {where} does not match the model's signature "
            f"({len(problems)} problem{'s' * (len(problems) != 1)}); the last output stays:\n"
            + listed
        )
    scores = predict(model, model_input)
    out = output_frame(frame, scores, version)
    output = posixpath.normpath(batch.output)
    write_table(out, ctx.output(output))
    return {"rows": len(out), "output": output}


def output_frame(frame: Any, scores: Scores, version: str) -> Any:
    """The input's columns, then prediction, one probability column per class, the version."""
    out = frame.copy()
    out[PREDICTION_COLUMN] = scores.predictions
    if scores.probabilities is not None:
        for j, cls in enumerate(scores.classes):
            out[f"{PROBABILITY_PREFIX}{cls}"] = [row[j] for row in scores.probabilities]
    out[VERSION_COLUMN] = version
    return out


def write_table(frame: Any, path: Path) -> None:
    """CSV, or Parquet for a ``.parquet`` path; deterministic bytes, atomic replace."""
    if path.suffix == ".parquet":
        from mlopsctl.stages.frames import write_parquet

        write_parquet(frame, path)
        return
    text = frame.to_csv(index=False, lineterminator="\n", float_format=None)
    atomic_write_bytes(path, text.encode("utf-8"))


# --- inputs -----------------------------------------------------------------------------------


def _read_bytes(ctx: StageContext, rel: str) -> bytes:
    try:
        return ctx.input(rel).read_bytes()
    except FileNotFoundError as exc:
        raise StageFailedError(f"{rel} does not exist (run the stages before deploy)") from exc
    except OSError as exc:
        raise StageFailedError(f"cannot read {rel}: {exc.strerror}") from exc


def _read_json(ctx: StageContext, rel: str, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(_read_bytes(ctx, rel))
    except ValueError as exc:
        raise StageFailedError(f"{what} {rel} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise StageFailedError(f"{what} {rel} must be a JSON object")
    return doc


def _created_at() -> str:
    """UTC now, or SOURCE_DATE_EPOCH when set (reproducible builds: `verify` sets it)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    moment = (
        dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC)
        if epoch.isdigit()
        else dt.datetime.now(tz=dt.UTC)
    )
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")
