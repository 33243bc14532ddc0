"""`mlopsctl graph`."""

from __future__ import annotations

import click

from mlopsctl.cli.main import settings


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["ascii", "mermaid", "dot"]),
    default="ascii",
    show_default=True,
)
@click.option("-u", "--usecase", "usecases", multiple=True, help="Only this use case (repeatable).")
@click.pass_context
def graph(ctx: click.Context, fmt: str, usecases: tuple[str, ...]) -> int:
    """Show the compiled stage DAG, each stage marked with what `plan` says about it."""
    from mlopsctl.plan.api import plan_directory
    from mlopsctl.report import graph_view
    from mlopsctl.report.console import print_lines

    planned = plan_directory(settings(ctx).directory, usecases=usecases)
    g = planned.graph.only(set(usecases)) if usecases else planned.graph
    status = {s.id: s.action.value for s in planned.plan.stages}
    if fmt == "mermaid":
        click.echo(graph_view.render_mermaid(g, status), nl=False)
    elif fmt == "dot":
        click.echo(graph_view.render_dot(g, status), nl=False)
    else:
        print_lines([(style, text.rstrip()) for style, text in graph_view.ascii_lines(g, status)])
    return 0
