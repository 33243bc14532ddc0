"""`mlopsctl history`."""

from __future__ import annotations

import click

from mlopsctl.cli.main import settings


@click.command()
@click.argument("name")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.pass_context
def history(ctx: click.Context, name: str, fmt: str, as_json: bool) -> int:
    """Applied states of use case NAME through git history, newest first.

    One row per commit that changed what NAME has applied (its dvc.lock entries or reports):
    commit, date, author, version tag (NAME@vX.Y.Z), gate verdict, metrics, data hashes, and
    the params that changed since the row before.
    """
    from mlopsctl.gitops.history import history_directory
    from mlopsctl.report import history_view

    h = history_directory(settings(ctx).directory, name)
    if as_json or fmt == "json":
        click.echo(history_view.render_json(h), nl=False)
    else:
        from mlopsctl.report.console import print_lines

        print_lines(history_view.text_lines(h))
    return 0
