"""`mlopsctl init [--example NAME] [--remote URL]`."""

from __future__ import annotations

import click

from mlopsctl.cli.main import settings
from mlopsctl.project_init import DEFAULT_EXAMPLE


@click.command()
@click.option(
    "--example",
    default=DEFAULT_EXAMPLE,
    show_default=True,
    help="Example use case to start from (see examples/).",
)
@click.option(
    "--remote", "remote_url", help="Configure this path or URL as the default DVC remote."
)
@click.pass_context
def init(ctx: click.Context, example: str, remote_url: str | None) -> int:
    """Set up git, DVC, mlopsctl.yaml and an example use case in the current directory.

    Also writes the JSON Schemas to .schemas/mlopsctl/ for editors, .vscode/settings.json and
    the owners' block of .github/CODEOWNERS. Idempotent: run it again and it only adds what is
    missing and updates what it generates; it never overwrites a file of yours.
    """
    from mlopsctl.project_init import init_project

    result = init_project(settings(ctx).directory, example, remote_url)
    for step in result.steps:
        click.echo(step, err=step.startswith("warning: "))
    click.echo("next: commit these files with git, then mlopsctl plan and mlopsctl apply")
    return 0
