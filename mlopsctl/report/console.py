"""One rich Console for the process: colour only on a terminal, never with NO_COLOR."""

from __future__ import annotations

import os
import sys
from typing import Any


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    color = stream.isatty() and "NO_COLOR" not in os.environ
    return Console(
        file=stream,
        no_color=not color,
        color_system="auto" if color else None,
        highlight=False,
        soft_wrap=True,
    )


def print_lines(lines: list[tuple[str, str]], stderr: bool = False) -> None:
    """Print (style, text) lines: through rich on a colour terminal, plainly otherwise.

    Plain output (pipes, CI logs, NO_COLOR) does not import rich at all.
    """
    stream = sys.stderr if stderr else sys.stdout
    if not stream.isatty() or "NO_COLOR" in os.environ:
        stream.write("".join(text + "\n" for _style, text in lines))
        return
    out = console(stderr)
    for style, text in lines:
        out.print(text, style=style or None, markup=False, highlight=False, soft_wrap=True)
