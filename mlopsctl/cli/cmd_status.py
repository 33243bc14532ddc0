"""`mlopsctl status`."""

from __future__ import annotations

import json

import click

from mlopsctl.cli.main import settings


@click.command()
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--remote",
    "require_remote",
    is_flag=True,
    help="Exit 1 when the DVC remote lacks an object that dvc.lock or a .dvc file names.",
)
@click.pass_context
def status(ctx: click.Context, fmt: str, as_json: bool, require_remote: bool) -> int:
    """Per use case: in sync, out of sync (and why), failing gate, never applied, not pushed."""
    from mlopsctl.execute.remote import push_state, serving_state
    from mlopsctl.plan.api import plan_directory
    from mlopsctl.report.console import print_lines
    from mlopsctl.report.status_view import status_lines

    planned = plan_directory(settings(ctx).directory)
    statuses, note = push_state(planned)
    statuses = serving_state(planned, statuses)
    if as_json or fmt == "json":
        click.echo(
            json.dumps([s.to_dict() for s in statuses], indent=2, sort_keys=True, default=str)
        )
    else:
        print_lines(status_lines(statuses, note))
    if require_remote and (note or any(s.not_pushed for s in statuses)):
        return 1
    return 0
