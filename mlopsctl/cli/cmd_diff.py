"""`mlopsctl diff`."""

from __future__ import annotations

import click

from mlopsctl.cli.main import settings


@click.command()
@click.argument("a_rev", required=False, default="HEAD", metavar="[REV]")
@click.argument("b_rev", required=False, metavar="[REV2]")
@click.option("-u", "--usecase", "usecases", multiple=True, help="Only this use case (repeatable).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--all", "include_all", is_flag=True, help="Show unchanged params and metrics too.")
@click.pass_context
def diff(
    ctx: click.Context,
    a_rev: str,
    b_rev: str | None,
    usecases: tuple[str, ...],
    fmt: str,
    as_json: bool,
    include_all: bool,
) -> int:
    """Params and metrics of each use case: the working tree against REV (default HEAD).

    Reads what was applied (dvc.lock, reports/NAME/metrics.json, gate and monitoring
    verdicts) at REV from git, without checking it out. With REV2, compares REV with REV2.
    Like `dvc params diff` and `dvc metrics diff` together; unchanged values are left out
    unless --all.
    """
    from mlopsctl.gitops.diff import diff_directory
    from mlopsctl.report import diff_view

    d = diff_directory(settings(ctx).directory, a_rev, b_rev, usecases)
    if as_json or fmt == "json":
        click.echo(diff_view.render_json(d, include_all), nl=False)
    elif fmt == "markdown":
        click.echo(diff_view.render_markdown(d, include_all), nl=False)
    else:
        from mlopsctl.report.console import print_lines

        print_lines(diff_view.text_lines(d, include_all))
    return 0
