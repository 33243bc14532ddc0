"""What the DVC remotes hold of the applied state, for `mlopsctl status`, and what goes where."""

from __future__ import annotations

import posixpath
from dataclasses import replace

from mlopsctl.errors import StateError
from mlopsctl.plan.api import Planned
from mlopsctl.plan.status import UseCaseStatus, usecase_status, with_push_state


def own_remote_targets(
    planned: Planned, recorded: set[str] | None = None
) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """For each use case's own DVC remote (``infra.remote``, not the project's): the use cases
    that name it, and the DVC targets of what they hold: each stage with cached outputs that
    dvc.lock records (or that this apply *recorded*) as ``dvc.yaml:STAGE``, and each data
    source's ``.dvc`` file (a source shared with use cases of other remotes goes to each)."""
    project = planned.project
    out = {}
    for remote, names in project.own_remotes().items():
        targets = [
            f"dvc.yaml:{st.dvc_name}"
            for st in planned.graph
            if st.usecase in names
            and st.outs
            and (planned.state.get(st.dvc_name) or st.dvc_name in (recorded or ()))
        ]
        for name in names:
            for src in project.usecase(name).spec.data.sources.values():
                if src.path is not None:
                    dvcfile = f"{posixpath.normpath(src.path)}.dvc"
                    if (project.root / dvcfile).is_file():
                        targets.append(dvcfile)
        out[remote] = (tuple(names), tuple(dict.fromkeys(targets)))
    return out


def push_state(planned: Planned) -> tuple[list[UseCaseStatus], str]:
    """Each use case's status with the files the remote lacks, and a note when it cannot tell.

    The note is empty when the remote was read; otherwise it says why the push state is unknown
    (no remote configured, or the remote cannot be read).
    """
    from mlopsctl.integrations import dvc

    root = planned.project.root
    statuses = usecase_status(planned)
    name = planned.project.config.remote
    remote = dvc.remote_configured(root, name)
    if remote is None:
        if any(s.state != "never applied" for s in statuses):
            return statuses, "push state unknown: no DVC remote is configured"
        return statuses, ""
    own = own_remote_targets(planned)
    for name, (usecases, _targets) in own.items():
        if dvc.remote_configured(root, name) != name:  # DVC would refuse every remote status
            return statuses, (
                f"push state unknown: DVC remote '{name}' (infra.remote of "
                f"{', '.join(usecases)}) is not configured"
            )
    try:
        missing = dvc.not_pushed(root, remote)
        for name, (_usecases, targets) in own.items():
            if name != remote and targets:
                missing += dvc.not_pushed(root, name, targets)
    except StateError as exc:
        return statuses, f"push state unknown: {exc.message}"
    return with_push_state(planned, statuses, sorted(set(missing))), ""


def serving_state(planned: Planned, statuses: list[UseCaseStatus]) -> list[UseCaseStatus]:
    """*statuses* with, for each use case with a deploy target, what is deployed and served.

    ``deployed``: the version in the bundle's manifest; ``model``: the version of the model
    dvc.lock records now (they differ after a failed gate); for ``rest``, ``serving``: the
    version a server at ``deploy.rest.host:port`` reports on ``/health`` (None: not running).
    """
    import hashlib
    import json

    from mlopsctl.compile.layout import BUNDLE_MANIFEST, UseCasePaths

    root = planned.project.root
    out = []
    for s in statuses:
        uc = planned.project.usecase(s.name).spec
        if uc.deploy.target == "none":
            out.append(s)
            continue
        paths = UseCasePaths(uc.name)
        try:
            manifest = json.loads((root / paths.bundle_file(BUNDLE_MANIFEST)).read_text("utf-8"))
            deployed = str(manifest.get("version") or "") or None
        except (OSError, ValueError, AttributeError):
            deployed = None
        try:
            model: str | None = hashlib.sha256((root / paths.model).read_bytes()).hexdigest()[:12]
        except OSError:
            model = None
        serving = None
        if uc.deploy.target == "rest":
            serving = _health_version(uc.deploy.rest.host, uc.deploy.rest.port)
        out.append(
            replace(
                s,
                deployment=_deployment_state(uc.deploy.target, s.gate, model, deployed, serving),
                deployed_version=deployed,
                serving_version=serving,
            )
        )
    return out


def _deployment_state(
    target: str, gate: str, model: str | None, deployed: str | None, serving: str | None
) -> str:
    if deployed is None:
        return "not deployed"
    if gate == "failed" and model != deployed:
        if target == "rest" and serving is None:
            return f"gate failed, deployed {deployed}, not running"
        return f"gate failed, serving {deployed}"
    if target == "rest":
        if serving is None:
            return f"not running (deployed {deployed})"
        if serving != deployed:
            return f"out of sync: serving {serving}, deployed {deployed}"
    if model is not None and model != deployed:
        return f"out of sync: deployed {deployed}, model {model}"
    return "in sync"


def _health_version(host: str, port: int) -> str | None:
    """The version a running `mlopsctl serve` reports, or None when nothing answers."""
    import json
    import urllib.request

    address = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/health", timeout=1.0) as resp:
            body = json.loads(resp.read(65536).decode("utf-8"))
    except (OSError, ValueError):
        return None
    version = body.get("version") if isinstance(body, dict) else None
    return str(version) if version else None
