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
@click.pass_context
def status(ctx: click.Context, fmt: str, as_json: bool) -> int:
    """Per use case: in sync, out of sync (and why), failing gate, or never applied."""
    from mlopsctl.plan.api import plan_directory
    from mlopsctl.plan.status import usecase_status
    from mlopsctl.report.console import console

    statuses = usecase_status(plan_directory(settings(ctx).directory))
    if as_json or fmt == "json":
        click.echo(
            json.dumps([s.to_dict() for s in statuses], indent=2, sort_keys=True, default=str)
        )
        return 0
    out = console()
    width = max(len(s.name) for s in statuses)
    style = {
        "in sync": "green",
        "out of sync": "yellow",
        "failing gate": "red",
        "never applied": "cyan",
    }
    for s in statuses:
        metrics = ", ".join(
            f"{k}={v:.4g}" for k, v in sorted(s.metrics.items()) if isinstance(v, float)
        )
        line = f"{s.name.ljust(width)}  {s.state:<13}  gate {s.gate:<7}  {metrics}".rstrip()
        out.print(line, style=style.get(s.state), markup=False, highlight=False)
        for r in s.reasons:
            out.print(f"{' ' * width}    {r}", markup=False, highlight=False)
    return 0
