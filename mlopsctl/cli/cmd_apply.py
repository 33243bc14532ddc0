"""`mlopsctl apply [PLANFILE]`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mlopsctl.cli.main import settings


@click.command()
@click.argument("planfile", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-u", "--usecase", "usecases", multiple=True, help="Apply only this use case (repeatable)."
)
@click.option(
    "-j", "--jobs", type=click.IntRange(min=1), help="Stages to run at once (default: the cores)."
)
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    help="Run every stage here (local) or on each use case's dask cluster (dask), whatever "
    "infra.executor says.",
)
@click.option("--no-commit", is_flag=True, help="Record in dvc.lock but make no git commit.")
@click.option("--force", is_flag=True, help="Re-run every stage, even those up to date.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def apply(
    ctx: click.Context,
    planfile: Path | None,
    usecases: tuple[str, ...],
    jobs: int | None,
    executor: str | None,
    no_commit: bool,
    force: bool,
    as_json: bool,
) -> int:
    """Run the stages the plan marks, record them in dvc.lock, push artifacts, commit.

    With PLANFILE (saved by `mlopsctl plan -o`), applies exactly that plan, and refuses it if
    anything it was computed from has changed since.
    """
    from mlopsctl.errors import MlopsctlError
    from mlopsctl.execute.apply import apply_directory
    from mlopsctl.interrupts import Interrupted
    from mlopsctl.report.apply_view import make_reporter, summary

    if planfile is not None and (usecases or force):
        raise MlopsctlError("a saved plan fixes its use cases and --force; give neither with it")
    directory = settings(ctx).directory
    reporter = make_reporter(quiet=as_json)
    try:
        result = apply_directory(
            directory,
            reporter,
            planfile=(directory / planfile) if planfile else None,
            usecases=usecases,
            jobs=jobs,
            commit=False if no_commit else None,
            force=force,
            executor=executor,
        )
    except Interrupted as exc:
        exc.detail = interrupted_detail(directory)
        raise
    finally:
        close = getattr(reporter, "close", None)
        if close is not None:
            close()
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True, default=str))
    elif result.outcomes:
        click.echo(summary(result))
    return result.exit_code


def interrupted_detail(directory: Path) -> str:
    """What an interrupted apply left recorded and what not (read after it stopped)."""
    from mlopsctl.errors import MlopsctlError
    from mlopsctl.execute.record import JOURNAL, PENDING_COMMIT, read_journal
    from mlopsctl.spec.loader import find_project_root

    head = "workers stopped, lock released."
    try:
        root = find_project_root(directory)
    except MlopsctlError:
        return head
    done = {e.get("stage") for e in read_journal(root)}
    if done:
        return (
            f"{head} {len(done)} stage(s) completed before the interruption and are kept in "
            f"{JOURNAL}: the next `mlopsctl apply` records and commits them. Stages that were "
            "running were stopped and are recorded nowhere."
        )
    if (root / PENDING_COMMIT).exists():
        return (
            f"{head} What ran is recorded in dvc.lock but not committed: the next "
            "`mlopsctl apply` pushes and commits it."
        )
    return (
        f"{head} Nothing is half-recorded: dvc.lock holds only stages that completed. "
        "Run `mlopsctl apply` again to finish."
    )
