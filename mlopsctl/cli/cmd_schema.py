"""`mlopsctl schema [--output DIR]`."""

from __future__ import annotations

from pathlib import Path

import click

from mlopsctl.cli.main import settings

DEFAULT_OUTPUT = ".mlopsctl/schemas"


@click.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Directory to write them to [default: {DEFAULT_OUTPUT} of the project].",
)
@click.pass_context
def schema(ctx: click.Context, output: Path | None) -> int:
    """Write the JSON Schemas (use case, project, plan, monitor) for editors and validators.

    Without --output they go to .mlopsctl/schemas of the project (git-ignored, so the
    repository does not change). `mlopsctl init` commits a copy to .schemas/mlopsctl/; after
    upgrading mlopsctl, refresh it with `mlopsctl schema --output .schemas/mlopsctl`.
    """
    from mlopsctl.errors import ProjectNotFoundError
    from mlopsctl.project_init import write_schemas
    from mlopsctl.spec.loader import find_project_root
    from mlopsctl.spec.paths import inside_repo

    cwd = settings(ctx).directory
    if output is None:
        try:
            base = find_project_root(cwd)
        except ProjectNotFoundError:
            base = cwd
        # .mlopsctl may be a committed symlink: never follow it out of the repository
        dest = inside_repo(base, DEFAULT_OUTPUT)
    else:
        dest = output if output.is_absolute() else cwd / output
    if dest.exists() and not dest.is_dir():
        raise click.BadParameter(f"'{dest}' is not a directory", param_hint="--output")
    written, current = write_schemas(dest)
    shown = _shown(dest, cwd)
    for name in written:
        click.echo(f"wrote {shown}/{name}")
    for name in current:
        click.echo(f"up to date: {shown}/{name}")
    return 0


def _shown(dest: Path, cwd: Path) -> str:
    """*dest* relative to where the user is, when it is below it."""
    try:
        return dest.resolve().relative_to(cwd.resolve()).as_posix()
    except ValueError:
        return str(dest)
