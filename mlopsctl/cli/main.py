"""Entry point: the ``mlopsctl`` group, global options, and the error policy.

Subcommands are imported only when invoked (``--help`` imports none of them), so that the
commands users wait on stay light. A :class:`MlopsctlError` is printed as one message and exits
with its code; so are errors of the user's environment that escape from git, DVC or the file
system (a corrupt repository, a read-only disk). Anything else is a bug and keeps its traceback.
SIGINT and SIGTERM end a command with 130 and 143 (see :mod:`mlopsctl.interrupts`).
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from mlopsctl import __version__
from mlopsctl.errors import MlopsctlError, did_you_mean
from mlopsctl.interrupts import Interrupted, install

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
    "schema": ("mlopsctl.cli.cmd_schema:schema", "Write the JSON Schemas, for editors."),
    "codeowners": (
        "mlopsctl.cli.cmd_codeowners:codeowners",
        "Write metadata.owners into .github/CODEOWNERS (--check: exit 1 if out of date).",
    ),
    "plan": ("mlopsctl.cli.cmd_plan:plan", "Show which stages would run, and why."),
    "apply": (
        "mlopsctl.cli.cmd_apply:apply",
        "Run the planned stages, record them in DVC, commit.",
    ),
    "graph": ("mlopsctl.cli.cmd_graph:graph", "Show the compiled stage DAG."),
    "diff": (
        "mlopsctl.cli.cmd_diff:diff",
        "Params and metrics of each use case vs a git revision (default HEAD).",
    ),
    "history": (
        "mlopsctl.cli.cmd_history:history",
        "Applied versions of a use case from git history: data, params, metrics, gate.",
    ),
    "status": ("mlopsctl.cli.cmd_status:status", "Desired vs applied state per use case."),
    "verify": (
        "mlopsctl.cli.cmd_verify:verify",
        "Re-run a revision's pipeline in a scratch worktree; prove its outputs match.",
    ),
    "monitor": (
        "mlopsctl.cli.cmd_monitor:monitor",
        "Check the current batch for drift, data quality and performance (exit 3: breach).",
    ),
    "serve": ("mlopsctl.cli.cmd_serve:serve", "Serve a use case's deployed model over HTTP."),
    "pr-comment": (
        "mlopsctl.cli.cmd_pr_comment:pr_comment",
        "Post or update the pull request's sticky comment (GitHub).",
    ),
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
    if debug:
        _debug_logging()
    if not directory.is_dir():
        raise click.BadParameter(f"directory '{directory}' does not exist", param_hint="-C")
    ctx.obj = Settings(directory.resolve(), debug)


def _debug_logging() -> None:
    """``--debug``: mlopsctl's own loggers at DEBUG, DVC's at INFO, to stderr."""
    import logging  # here: ~10 ms that plan, validate and --help do not need

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ours = logging.getLogger("mlopsctl")
    ours.addHandler(handler)
    ours.setLevel(logging.DEBUG)
    ours.propagate = False
    for name in ("dvc", "dvc_data", "dvc_objects", "scmrepo"):
        logging.getLogger(name).setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    debug = "--debug" in args
    install()  # SIGINT/SIGTERM raise Interrupted from here on
    try:
        code = cli.main(args=argv, prog_name="mlopsctl", standalone_mode=False)
    except MlopsctlError as exc:
        _fail(exc.message, exc.exit_code, debug)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        # `plan --detailed-exitcode` exits 2 only for "there are changes": a usage error is 1
        usage = isinstance(exc, click.UsageError) and "--detailed-exitcode" in args
        sys.exit(1 if usage else exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        cause = exc if isinstance(exc, Interrupted) else exc.__cause__
        if isinstance(cause, Interrupted):
            _interrupted(cause)
        _print_error("aborted" if isinstance(exc, click.exceptions.Abort) else "interrupted")
        sys.exit(130)
    except Exception as exc:
        message = environment_error(exc)
        if message is None:
            raise  # a bug: keep the traceback
        _fail(message, 1, debug)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exc()
    _print_error(message)
    sys.exit(code)


def _interrupted(exc: Interrupted) -> None:
    message = f"interrupted by {exc.name}"
    if exc.detail:
        message += f": {exc.detail}"
    _print_error(message)
    sys.exit(exc.exit_code)


# OSError numbers that describe the user's machine (permissions, a full or read-only disk)
ENVIRONMENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


def environment_error(exc: BaseException) -> str | None:
    """One line for an error of the user's environment that escaped from git, DVC or the OS.

    None for anything else (a bug). Classes are matched by name, so that this imports neither
    GitPython nor DVC.
    """
    names = {f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__}
    if "git.exc.GitCommandError" in names:
        from mlopsctl.integrations.git import describe_command_error

        return describe_command_error(exc)
    if "git.exc.GitError" in names:
        return f"git: {_one_line(str(exc))}"
    if "dvc.exceptions.DvcException" in names:
        text, cause = _one_line(str(exc)), _one_line(str(exc.__cause__ or ""))
        return f"dvc: {text}" + (f" ({cause})" if cause and cause not in text else "")
    if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


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
