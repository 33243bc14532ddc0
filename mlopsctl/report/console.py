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
