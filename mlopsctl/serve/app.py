"""The FastAPI application that serves one deployment bundle, and swaps in a new one live.

Routes: ``POST /predict``, ``GET /health``, ``GET /metadata``, ``GET /metrics`` (Prometheus),
``/docs`` and ``/openapi.json`` (whose request body is generated from the bundle's signature).

Hot reload: a background task watches the bundle's ``manifest.json``. When it changes, the new
bundle is loaded and checked in a thread while the old one keeps serving; then one assignment
makes it current. A request holds the bundle it started with until it is answered, so none is
dropped or mixes two versions. A bundle that does not load is refused (logged, counted in
``/metrics``) and the old version goes on serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response

from mlopsctl import __version__
from mlopsctl.serve.batching import MicroBatcher
from mlopsctl.serve.bundle import Bundle, BundleError, load_bundle, manifest_stamp
from mlopsctl.serve.metrics import CONTENT_TYPE, Metrics
from mlopsctl.serve.requests import BadRequest
from mlopsctl.stages.scoring import model_frame, predict

log = logging.getLogger("mlopsctl.serve")

#: paths answered without the bearer token (liveness probes cannot always send one)
OPEN_PATHS = frozenset({"/health"})
KNOWN_PATHS = frozenset(
    {
        "/predict",
        "/health",
        "/metadata",
        "/metrics",
        "/docs",
        "/openapi.json",
        "/docs/oauth2-redirect",
    }
)
CONFIG_ENV = "MLOPSCTL_SERVE_CONFIG"  # how `serve --workers N` hands the config to each worker
TOKEN_ENV = "MLOPSCTL_SERVE_TOKEN"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class ServeConfig:
    bundle_dir: str
    allowed_modules: tuple[str, ...] = ("sklearn",)
    max_body_bytes: int = 1024 * 1024
    reload_interval: float = 1.0  # seconds between two looks at the manifest; 0 disables
    max_batch_rows: int = 256

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeConfig:
        doc = json.loads(os.environ[CONFIG_ENV])
        doc["allowed_modules"] = tuple(doc["allowed_modules"])
        return cls(**doc)


class RowError(ValueError):
    """The model's output for a record cannot be answered (e.g. not finite)."""


class Active:
    """A loaded bundle and the batcher that feeds its model."""

    def __init__(self, bundle: Bundle, max_rows: int) -> None:
        self.bundle = bundle
        self.batcher = MicroBatcher(self._predict, max_rows=max_rows)

    def _predict(self, rows: list[dict[str, Any]]) -> list[Any]:
        sig = self.bundle.signature
        frame = model_frame(sig, {n: [r[n] for r in rows] for n in sig.names})
        scores = predict(self.bundle.model, frame)
        classes = [str(c) for c in scores.classes]
        out: list[Any] = []
        for i, value in enumerate(scores.predictions):
            probs = scores.probabilities[i] if scores.probabilities is not None else None
            finite = not (isinstance(value, float) and not math.isfinite(value))
            if probs is not None:
                finite = finite and all(math.isfinite(p) for p in probs)
            if not finite:
                out.append(RowError("the model's output is not a finite number"))
            else:
                out.append((value, dict(zip(classes, probs, strict=True)) if probs else None))
        return out


class State:
    def __init__(self, config: ServeConfig, token: str | None, active: Active) -> None:
        self.config = config
        self.token = token
        self.active = active
        self.stamp = manifest_stamp(Path(config.bundle_dir))
        self.refused_stamp: tuple[int, int, int] | None = None
        self.metrics = Metrics()
        self.closing: set[asyncio.Task[None]] = set()  # old batchers finishing their work


def create_app(config: ServeConfig, token: str | None = None) -> Any:
    """The ASGI app serving the bundle in ``config.bundle_dir`` (loaded now: errors raise)."""
    bundle = load_bundle(Path(config.bundle_dir), config.allowed_modules)
    state = State(config, token, Active(bundle, config.max_batch_rows))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        watcher = asyncio.create_task(_watch(state, app)) if config.reload_interval > 0 else None
        yield
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await state.active.batcher.close()

    app = FastAPI(
        title=f"mlopsctl serve: {bundle.usecase}",
        version=__version__,
        description="Predictions from the deployed model of an mlopsctl use case.",
        lifespan=lifespan,
    )
    app.state.serve = state

    @app.post(
        "/predict",
        summary="Predict: a list of records, or records / instances / dataframe_records / "
        "dataframe_split (MLflow)",
        responses={
            200: {
                "description": "One prediction per record",
                "content": {"application/json": {"schema": _RESPONSE}},
            },
            400: {
                "description": "Empty body or not JSON",
                "content": {"application/json": {"schema": _ERROR}},
            },
            401: {
                "description": "Missing or wrong bearer token",
                "content": {"application/json": {"schema": _ERROR}},
            },
            413: {
                "description": "Body larger than deploy.rest.max_body_mb",
                "content": {"application/json": {"schema": _ERROR}},
            },
            422: {
                "description": "A record does not match the model's signature",
                "content": {"application/json": {"schema": _ERROR}},
            },
        },
    )
    async def predict_route(request: Request) -> Response:
        active = state.active  # this request is answered by this bundle, even across a swap
        body = await request.body()
        try:
            rows = active.bundle.schema.parse(body)
        except BadRequest as exc:
            return JSONResponse(exc.body(), exc.status)
        try:
            results = await active.batcher.submit(rows)
        except (ValueError, TypeError) as exc:  # the model refused these (validated) values
            return JSONResponse(
                {"error": f"the model cannot score these records: {exc}", "detail": []}, 422
            )
        bad = [i for i, r in enumerate(results) if isinstance(r, RowError)]
        if bad:
            detail = [{"loc": [i], "msg": str(results[i]), "type": "model_output"} for i in bad]
            return JSONResponse(
                {
                    "error": f"record {bad[0]}: {results[bad[0]]} (inputs far outside the "
                    "range seen in training?)",
                    "detail": detail,
                },
                422,
            )
        state.metrics.predictions += len(rows)
        state.metrics.batches = active.batcher.batches
        payload: dict[str, Any] = {
            "predictions": [r[0] for r in results],
            "model_version": active.bundle.version,
        }
        if results and results[0][1] is not None:
            payload["probabilities"] = [r[1] for r in results]
        return Response(json.dumps(payload, allow_nan=False), media_type="application/json")

    @app.get("/health", summary="Liveness and the version being served")
    async def health() -> dict[str, Any]:
        bundle = state.active.bundle
        return {"status": "ok", "usecase": bundle.usecase, "version": bundle.version}

    @app.get("/metadata", summary="The bundle's manifest, signature and metrics")
    async def metadata() -> dict[str, Any]:
        bundle = state.active.bundle
        return {
            "usecase": bundle.usecase,
            "version": bundle.version,
            "manifest": bundle.manifest,
            "signature": bundle.signature_doc,
            "metrics": bundle.manifest.get("metrics", {}),
        }

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        bundle = state.active.bundle
        text = state.metrics.render(bundle.usecase, bundle.version)
        return Response(text, media_type=CONTENT_TYPE)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            body = state.active.bundle.schema.body_schema()
            doc.setdefault("components", {}).setdefault("schemas", {}).update(body.pop("$defs"))
            doc["paths"]["/predict"]["post"]["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body}},
            }
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return Guard(app, state)


def app_from_env() -> Any:
    """The app for one uvicorn worker (``serve --workers N``): config from the environment."""
    return create_app(ServeConfig.from_env(), os.environ.get(TOKEN_ENV) or None)


# --- reload -----------------------------------------------------------------------------------


async def _watch(state: State, app: FastAPI) -> None:
    loop = asyncio.get_running_loop()
    path = Path(state.config.bundle_dir)
    while True:
        await asyncio.sleep(state.config.reload_interval)
        stamp = manifest_stamp(path)
        if stamp is None or stamp in (state.stamp, state.refused_stamp):
            continue  # unchanged, or being replaced right now, or already refused
        old = state.active
        try:
            bundle = await loop.run_in_executor(
                None, load_bundle, path, state.config.allowed_modules
            )
        except BundleError as exc:
            state.refused_stamp = stamp
            state.metrics.reloads["refused"] += 1
            log.warning(
                "refused the new bundle in %s: %s; still serving version %s",
                path,
                exc.message,
                old.bundle.version,
            )
            continue
        except Exception:  # never let the watcher die: the old version keeps serving
            state.refused_stamp = stamp
            state.metrics.reloads["refused"] += 1
            log.exception(
                "refused the new bundle in %s; still serving %s", path, old.bundle.version
            )
            continue
        state.stamp = stamp
        if bundle.manifest == old.bundle.manifest:
            continue  # the same bundle, rewritten (e.g. by `dvc checkout`)
        state.active = Active(bundle, state.config.max_batch_rows)
        app.openapi_schema = None
        state.metrics.reloads["ok"] += 1
        log.warning("now serving version %s (was %s)", bundle.version, old.bundle.version)
        # the old batcher answers what it already took, then stops
        closing = loop.create_task(old.batcher.close())
        state.closing.add(closing)
        closing.add_done_callback(state.closing.discard)


# --- the guard: auth, body size, metrics ------------------------------------------------------


class Guard:
    """ASGI middleware: bearer token, body size limit, and per-request metrics."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path = scope.get("path", "")
        label = path if path in KNOWN_PATHS else "other"
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is None and scope.get("method") in ("POST", "PUT", "PATCH"):
                body, refusal = await self._read_body(scope, receive)
                if refusal is None:
                    receive = _replay(body, receive)
            if refusal is not None:
                await _send_json(send_status, *refusal)
            else:
                await self.app(scope, receive, send_status)
        finally:
            self.state.metrics.observe(
                scope.get("method", ""), label, status, time.perf_counter() - start
            )

    def _refusal(
        self, scope: Scope
    ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]] | None:
        token = self.state.token
        if token is None or scope.get("path") in OPEN_PATHS:
            return None
        header = _header(scope, b"authorization")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return None
        return (
            401,
            {"error": "missing or wrong bearer token (Authorization: Bearer ...)", "detail": []},
            [(b"www-authenticate", b'Bearer realm="mlopsctl"')],
        )

    async def _read_body(
        self, scope: Scope, receive: Receive
    ) -> tuple[bytes, tuple[int, dict[str, Any], list[tuple[bytes, bytes]]] | None]:
        limit = self.state.config.max_body_bytes
        too_big = (
            413,
            {
                "error": f"the body is larger than {limit} bytes (deploy.rest.max_body_mb)",
                "detail": [],
            },
            [(b"connection", b"close")],
        )
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > limit:
            return b"", too_big
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return b"", too_big
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), None


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body read already, then what the client does next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(
    send: Send, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "detail": {"type": "array"}},
}
_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["predictions", "model_version"],
    "properties": {
        "predictions": {"type": "array", "description": "One per record, in order"},
        "probabilities": {
            "type": "array",
            "items": {"type": "object", "additionalProperties": {"type": "number"}},
            "description": "Classifiers: class -> probability, one per record",
        },
        "model_version": {"type": "string", "description": "The served model's content hash"},
    },
}
