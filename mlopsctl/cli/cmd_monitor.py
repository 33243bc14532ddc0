"""`mlopsctl monitor [-u NAME] [--data PATH] [--format text|json|markdown|html] [--output DIR]`."""

from __future__ import annotations

from pathlib import Path

import click

from mlopsctl.cli.main import settings


@click.command(name="monitor")
@click.option("-u", "--usecase", "usecases", multiple=True, help="Only this use case (repeatable).")
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Check this CSV or Parquet file instead of monitoring.current.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown", "html"]),
    default="text",
    show_default=True,
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write monitoring.json, report.html and report.md into DIR.",
)
@click.pass_context
def monitor(
    ctx: click.Context,
    usecases: tuple[str, ...],
    data: Path | None,
    fmt: str,
    output: Path | None,
) -> int:
    """Drift, data quality and performance of the current batch vs the training reference.

    Exits 0 when every threshold holds, 3 on a breach, 1 on an error. Reads the reference
    profile and the model that apply wrote; never changes dvc.lock, git or reports/.
    """
    from mlopsctl.execute.monitor import monitor_directory
    from mlopsctl.monitor import render
    from mlopsctl.report.console import print_lines
    from mlopsctl.report.monitor_view import monitor_lines

    base = settings(ctx).directory
    if data is not None and not data.is_absolute():
        data = base / data
    results = monitor_directory(base, usecases, data)
    if output is not None:
        render.write_reports(output if output.is_absolute() else base / output, results)
    if fmt == "json":
        click.echo(render.render_json(results), nl=False)
    elif fmt == "markdown":
        click.echo(render.render_markdown(results), nl=False)
    elif fmt == "html":
        click.echo(render.render_html(results), nl=False)
    else:
        print_lines(monitor_lines([r.to_json() for r in results]))
    return 3 if any(r.breach for r in results) else 0
