"""Entry point: the ``mlopsctl`` group, global options, and the error policy.

Subcommands are imported only when invoked (``--help`` imports none of them), so that the
commands users wait on stay light. A :class:`MlopsctlError` is printed as one message and exits
with its code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from mlopsctl import __version__
from mlopsctl.errors import MlopsctlError, did_you_mean

# name -> (module:attribute, short help). The help lives here so `--help` imports nothing.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": (
        "mlopsctl.cli.cmd_init:init",
        "Set up git, DVC, mlopsctl.yaml and an example use case.",
    ),
    "validate": (
        "mlopsctl.cli.cmd_validate:validate",
        "Check use-case specs; errors as file:line:col.",
    ),
    "plan": ("mlopsctl.cli.cmd_plan:plan", "Show which stages would run, and why."),
    "apply": (
        "mlopsctl.cli.cmd_apply:apply",
        "Run the planned stages, record them in DVC, commit.",
    ),
    "graph": ("mlopsctl.cli.cmd_graph:graph", "Show the compiled stage DAG."),
    "status": ("mlopsctl.cli.cmd_status:status", "Desired vs applied state per use case."),
    "monitor": (
        "mlopsctl.cli.cmd_monitor:monitor",
        "Check the current batch for drift, data quality and performance (exit 3: breach).",
    ),
    "serve": ("mlopsctl.cli.cmd_serve:serve", "Serve a use case's deployed model over HTTP."),
    "run-stage": (
        "mlopsctl.cli.cmd_run_stage:run_stage",
        "Run one stage (the command in dvc.yaml).",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target, _help = COMMANDS[cmd_name]
        module_name, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            hint = did_you_mean(name, COMMANDS)
            ctx.fail(f"no such command '{name}'." + (f" {hint.capitalize()}" if hint else ""))
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [
            (name, help_) for name, (_t, help_) in sorted(COMMANDS.items()) if name != "run-stage"
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class Settings:
    """Global options, handed to every command through the click context."""

    def __init__(self, directory: Path, debug: bool) -> None:
        self.directory = directory
        self.debug = debug


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="mlopsctl")
@click.option(
    "-C",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    help="Run as if mlopsctl was started in DIR.",
    metavar="DIR",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, directory: Path, debug: bool) -> None:
    """mlopsctl: ML use cases as code. Plan in pull requests, apply on merge.

    Each use case is one YAML file (goal, data, model, infra, deploy, monitoring). `plan` shows
    which stages will run and why; `apply` runs them, records them with DVC and commits to git.
    """
    if not directory.is_dir():
        raise click.BadParameter(f"directory '{directory}' does not exist", param_hint="-C")
    ctx.obj = Settings(directory.resolve(), debug)


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = cli.main(args=argv, prog_name="mlopsctl", standalone_mode=False)
    except MlopsctlError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        _print_error(exc.message)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _print_error("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        _print_error("interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _print_error(message: str) -> None:
    prefix = "error: "
    if sys.stderr.isatty() and "NO_COLOR" not in os.environ:
        prefix = "\x1b[31;1merror:\x1b[0m "
    lines = message.splitlines() or [""]
    if len(lines) == 1:
        print(prefix + lines[0], file=sys.stderr)
    else:
        print(prefix + lines[0], file=sys.stderr)
        for line in lines[1:]:
            print(line, file=sys.stderr)


def settings(ctx: Any) -> Settings:
    obj = click.get_current_context().find_root().obj if ctx is None else ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj
