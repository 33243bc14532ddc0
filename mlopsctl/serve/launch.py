"""Find a use case's bundle, resolve its settings and token, and run uvicorn on it."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from mlopsctl.compile.layout import UseCasePaths
from mlopsctl.errors import MlopsctlError, did_you_mean
from mlopsctl.serve.bundle import BundleError, read_manifest

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_ENV_REF = re.compile(r"^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def bundle_dir(root: Path, name: str) -> Path:
    """``artifacts/NAME/deploy`` of the project at *root*; it must resolve inside the repo."""
    if not _NAME.match(name):
        raise MlopsctlError(f"'{name}' is not a use-case name")
    path = root / UseCasePaths(name).bundle
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise MlopsctlError(f"{UseCasePaths(name).bundle} points outside the repository")
    return resolved


def resolve_token(manifest: dict[str, Any], env: Any = None) -> str | None:
    """The bearer token named by ``deploy.rest.token`` (``${env:NAME}``), read from *env*."""
    ref = (manifest.get("rest") or {}).get("token")
    if not ref:
        return None
    match = _ENV_REF.match(str(ref))
    if match is None:
        raise MlopsctlError("deploy.rest.token must be written as ${env:NAME}")
    value = (os.environ if env is None else env).get(match.group(1))
    if not value:
        raise MlopsctlError(
            f"deploy.rest.token is {ref}, but the environment variable {match.group(1)} is not "
            "set: set it to the token clients must send"
        )
    return str(value)


def run(
    directory: Path,
    name: str,
    host: str | None,
    port: int | None,
    workers: int,
    reload_interval: float,
    access_log: bool,
) -> None:
    import uvicorn

    from mlopsctl.serve.app import CONFIG_ENV, TOKEN_ENV, ServeConfig, create_app
    from mlopsctl.spec.loader import find_project_root, load_project

    root = find_project_root(directory)
    project = load_project(root)
    names = [uc.name for uc in project.usecases]
    if name not in names:
        hint = did_you_mean(name, names)
        raise MlopsctlError(f"no use case '{name}'" + (f" ({hint})" if hint else ""))
    path = bundle_dir(root, name)
    try:
        manifest = read_manifest(path)
    except BundleError as exc:
        raise MlopsctlError(
            f"no deployment bundle for '{name}' ({exc.message}): set deploy.target: rest and "
            "run `mlopsctl apply`"
        ) from exc
    rest = manifest.get("rest") or {}
    token = resolve_token(manifest)
    config = ServeConfig(
        bundle_dir=str(path),
        allowed_modules=tuple(project.config.allowed_estimator_modules),
        max_body_bytes=int(float(rest.get("max_body_mb", 1)) * 1024 * 1024),
        reload_interval=reload_interval,
    )
    host = host or str(rest.get("host") or DEFAULT_HOST)
    port = port if port is not None else int(rest.get("port") or DEFAULT_PORT)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(name)s: %(message)s")
    try:
        app = create_app(config, token)  # load now: a broken bundle is one clear error
    except BundleError as exc:
        raise MlopsctlError(f"cannot serve '{name}': {exc.message}") from exc
    logging.getLogger("mlopsctl.serve").info(
        "serving %s version %s on http://%s:%d", name, manifest.get("version"), host, port
    )
    if workers == 1:
        uvicorn.run(app, host=host, port=port, access_log=access_log, log_level="info")
        return
    os.environ[CONFIG_ENV] = config.to_env()
    if token is not None:
        os.environ[TOKEN_ENV] = token  # inherited by the worker processes, never written
    uvicorn.run(
        "mlopsctl.serve.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level="info",
    )
