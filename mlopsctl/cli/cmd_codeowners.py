"""`mlopsctl codeowners [--check]`."""

from __future__ import annotations

import click

from mlopsctl.cli.main import settings


@click.command()
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when the block is out of date.")
@click.pass_context
def codeowners(ctx: click.Context, check: bool) -> int:
    """Write metadata.owners into the mlopsctl block of .github/CODEOWNERS.

    Each use case's file, reports/NAME/ and artifacts/NAME/ are mapped to its owners, so that
    pull requests changing them ask the owners for a review. Lines outside the block are kept
    as written. With --check nothing is written and the exit code says whether it is current.
    """
    from mlopsctl.gitops.codeowners import codeowners_state, write_codeowners
    from mlopsctl.spec.loader import find_project_root, load_project

    root = find_project_root(settings(ctx).directory)
    project = load_project(root)
    state = codeowners_state(root, project.usecases)
    for warning in state.warnings:
        click.echo(f"warning: {warning}", err=True)
    if state.desired is None:
        click.echo(f"ok: no use case names owners; no {state.path} to write")
        return 0
    if check:
        if state.up_to_date:
            click.echo(f"ok: {state.path} is up to date")
            return 0
        click.echo(f"{state.path} is out of date: run mlopsctl codeowners", err=True)
        return 1
    if write_codeowners(root, state):
        n = len(state.rules)
        click.echo(f"wrote {state.path} ({n} rule{'s' if n != 1 else ''} from metadata.owners)")
    else:
        click.echo(f"ok: {state.path} is up to date")
    return 0
