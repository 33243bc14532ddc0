"""`mlopsctl validate [PATH...]`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import click

from mlopsctl.cli.main import settings
from mlopsctl.errors import Diagnostic, ProjectNotFoundError, SpecError
from mlopsctl.spec.model import UseCaseFile


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.pass_context
def validate(ctx: click.Context, paths: tuple[Path, ...], fmt: str, as_json: bool) -> int:
    """Check use-case specs (default: every use case of the project).

    Prints every problem of every file as `file:line:col: key.path: message` and exits 1 when
    there is any.
    """
    from mlopsctl.spec.loader import find_project_root, load_project, validate_files
    from mlopsctl.spec.remotes import unconfigured_remotes

    cwd = settings(ctx).directory
    names: list[str] = []
    diags: list[Diagnostic]
    if paths:
        try:
            root: Path | None = find_project_root(cwd)
        except ProjectNotFoundError:
            root = None
        diags = validate_files(root, [cwd / p for p in paths], cwd=cwd)
        checked = [str(p) for p in paths]
    else:
        root = find_project_root(cwd)
        try:
            project = load_project(root)
            for warning in _repository_warnings(root, project.usecases):
                click.echo(f"warning: {warning}", err=True)
            for warning in unconfigured_remotes(project):
                click.echo(f"warning: {warning}", err=True)
            diags = []
            names = [uc.name for uc in project.usecases]
            checked = ["mlopsctl.yaml", *(uc.path for uc in project.usecases)]
        except SpecError as exc:
            diags = list(exc.diagnostics)
            checked = sorted({d.file for d in diags})
    if as_json or fmt == "json":
        click.echo(
            json.dumps(
                {
                    "valid": not diags,
                    "files": checked,
                    "usecases": names,
                    "diagnostics": [d.to_dict() for d in diags],
                },
                indent=2,
            )
        )
    else:
        for d in diags:
            click.echo(d.format())
        if diags:
            files = len({d.file for d in diags})
            n = len(diags)
            click.echo(
                f"{n} error{'s' if n != 1 else ''} in {files} file{'s' if files != 1 else ''}",
                err=True,
            )
        elif names:
            plural = "s" if len(names) != 1 else ""
            click.echo(f"ok: {len(names)} use case{plural} valid ({', '.join(names)})")
        else:
            click.echo(f"ok: {len(checked)} file{'s' if len(checked) != 1 else ''} valid")
    return 1 if diags else 0


def _repository_warnings(root: Path, usecases: Sequence[UseCaseFile]) -> list[str]:
    """Generated files of the repository that no longer match the specs or this mlopsctl."""
    from mlopsctl.gitops.codeowners import validate_warnings
    from mlopsctl.project_init import SCHEMA_DIR, stale_schemas

    out = validate_warnings(root, usecases)
    stale = stale_schemas(root)
    if stale:
        out.append(
            f"{', '.join(stale)} differ from this mlopsctl's schemas: run "
            f"mlopsctl schema --output {SCHEMA_DIR}"
        )
    return out
