"""`mlopsctl serve NAME [--host] [--port] [--workers]`: serve a use case's deployment bundle."""

from __future__ import annotations

import click

from mlopsctl.cli.main import settings


@click.command(name="serve")
@click.argument("name")
@click.option("--host", default=None, help="Interface to listen on [deploy.rest.host, 127.0.0.1].")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="Port [deploy.rest.port, 8080]."
)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Worker processes."
)
@click.option(
    "--reload-interval",
    type=click.FloatRange(0),
    default=1.0,
    show_default=True,
    help="Seconds between checks for a new bundle (0: never reload).",
)
@click.option(
    "--access-log/--no-access-log", default=False, show_default=True, help="Log every request."
)
@click.pass_context
def serve(
    ctx: click.Context,
    name: str,
    host: str | None,
    port: int | None,
    workers: int,
    reload_interval: float,
    access_log: bool,
) -> int:
    """Serve the deployed model of use case NAME (artifacts/NAME/deploy/) over HTTP.

    POST /predict, GET /health, /metadata, /metrics (Prometheus) and /docs. A new bundle written
    by `mlopsctl apply` is loaded and swapped in without dropping a request.
    """
    from mlopsctl.serve.launch import run

    run(settings(ctx).directory, name, host, port, workers, reload_interval, access_log)
    return 0
