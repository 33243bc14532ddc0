"""`mlopsctl plan`."""

from __future__ import annotations

from pathlib import Path

import click

from mlopsctl.cli.main import settings


@click.command()
@click.option(
    "-u", "--usecase", "usecases", multiple=True, help="Plan only this use case (repeatable)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save the plan to PLANFILE for `mlopsctl apply PLANFILE`.",
    metavar="PLANFILE",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there is nothing to do, 2 when there are changes, 1 on any error "
    "(a usage error included).",
)
@click.option("--force", is_flag=True, help="Plan to re-run every stage.")
@click.option(
    "--base",
    metavar="REV",
    help="With --format markdown: compare each use case's metrics and verdicts with REV's last "
    "apply (default: origin/$GITHUB_BASE_REF when set).",
)
@click.pass_context
def plan(
    ctx: click.Context,
    usecases: tuple[str, ...],
    fmt: str,
    as_json: bool,
    out: Path | None,
    detailed_exitcode: bool,
    force: bool,
    base: str | None,
) -> int:
    """Show which stages `apply` would run, and why.

    Compares the compiled pipeline with dvc.lock (what was applied) and the data on disk.
    Never runs user code and never changes the repository.
    """
    from mlopsctl.plan.api import plan_directory
    from mlopsctl.plan.planfile import save_plan
    from mlopsctl.report import plan_view
    from mlopsctl.spec.remotes import unconfigured_remotes

    planned = plan_directory(settings(ctx).directory, usecases=usecases, force=force)
    p = planned.plan
    for warning in unconfigured_remotes(planned.project):  # apply on merge would refuse
        click.echo(f"warning: {warning}", err=True)
    if base is not None and (as_json or fmt != "markdown"):
        click.echo("warning: --base is used by --format markdown only", err=True)
    if as_json or fmt == "json":
        click.echo(plan_view.render_json(p), nl=False)
    elif fmt == "markdown":
        from mlopsctl.gitops.review import goal_directions, review

        goals = goal_directions(planned.project)
        rev = review(planned.project.root, base, p.usecases(), goals)
        graph = planned.graph.only(set(usecases)) if usecases else planned.graph
        click.echo(plan_view.render_markdown(p, rev, graph), nl=False)
    else:
        plan_view.print_text(p)
    if out is not None:
        save_plan(p, settings(ctx).directory / out)
        if fmt == "text" and not as_json:
            click.echo(f"Saved the plan to {out}: apply exactly it with `mlopsctl apply {out}`.")
    if detailed_exitcode and p.has_changes:
        return 2
    return 0
