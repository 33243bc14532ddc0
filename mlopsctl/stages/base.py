"""What every built-in stage receives and returns.

A stage is a function ``run(ctx: StageContext) -> dict`` (a small JSON-able summary shown by
apply). It reads inputs through :meth:`StageContext.input` and writes every output through
:meth:`StageContext.output`, which points into a staging directory: the runner moves the staged
files into place only when the stage succeeds (or when the error says its outputs are valid, as
for a failed gate's verdict). Failures are :class:`mlopsctl.errors.StageFailedError` subclasses
with a message a user can act on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsctl.compile.layout import UseCasePaths
from mlopsctl.fsutil import atomic_write
from mlopsctl.spec.model import UseCase


@dataclass(frozen=True)
class StageContext:
    root: Path  # the project root (the git repository's work tree)
    usecase: UseCase
    paths: UseCasePaths
    staging: Path  # outputs are written below this directory, same relative paths as final
    n_jobs: int = 1
    allowed_estimator_modules: tuple[str, ...] = ("sklearn",)
    env: Mapping[str, str] | None = None  # for ${env:NAME}; None means os.environ
    #: the repository's HEAD, given when the stage runs away from the repository (a dask
    #: worker staging through ``infra.dask.storage``); None: ask git in ``root``
    git_head: str | None = None

    def input(self, rel: str) -> Path:
        """Absolute path of an input (a repo-relative POSIX path)."""
        return self.root / rel

    def output(self, rel: str) -> Path:
        """Where to write the output *rel*; its parent directory exists."""
        path = self.staging / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def getenv(self, name: str) -> str | None:
        return (self.env if self.env is not None else os.environ).get(name)


def write_json(path: Path, value: Any) -> None:
    """Deterministic JSON: sorted keys, 2-space indent, trailing newline, atomic replace."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write(path, text)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write *data* to *path* atomically (see :func:`mlopsctl.fsutil.atomic_write`)."""
    atomic_write(path, data)
