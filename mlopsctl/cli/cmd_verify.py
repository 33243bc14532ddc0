"""`mlopsctl verify [REV] [-u NAME] [--tolerance X] [--format text|json] [--jobs N]`."""

from __future__ import annotations

import json

import click

from mlopsctl.cli.main import settings


@click.command(name="verify")
@click.argument("rev", required=False, default="HEAD")
@click.option("-u", "--usecase", "usecases", multiple=True, help="Only this use case (repeatable).")
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="How far a re-produced metric may lie from the recorded one: |new - old| <= "
    "X * max(1, |old|). Outputs that differ but keep every metric within it are "
    "'nondeterministic' (exit 0).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "-j", "--jobs", type=click.IntRange(min=1), help="Stages to run at once (default: the cores)."
)
@click.pass_context
def verify(
    ctx: click.Context,
    rev: str,
    usecases: tuple[str, ...],
    tolerance: float,
    fmt: str,
    as_json: bool,
    jobs: int | None,
) -> int:
    """Re-run REV's pipeline (default HEAD) in a scratch worktree; prove its outputs match.

    Fetches REV's inputs and recorded outputs from the DVC remote (each checked against its
    hash), re-runs every stage REV's dvc.lock records and compares each output's md5 with it.
    Never touches your working tree, index, dvc.lock or DVC cache, and records nothing.
    Exits 0 when every stage reproduced (or stayed within --tolerance), 1 otherwise.
    """
    from mlopsctl.gitops.verify import verify_directory
    from mlopsctl.report.console import print_lines
    from mlopsctl.report.verify_view import VerifyProgress, verify_lines

    progress = VerifyProgress()
    try:
        result = verify_directory(
            settings(ctx).directory,
            progress,
            rev=rev,
            usecases=usecases,
            tolerance=tolerance,
            jobs=jobs,
        )
    finally:
        progress.close()
    doc = result.to_dict()
    if as_json or fmt == "json":
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print_lines(verify_lines(doc))
    return result.exit_code
