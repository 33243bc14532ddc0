"""Imported by the local pool's fork server when built-in stages will run: their libraries.

The fork server imports them once and every worker it forks starts with them loaded (shared
copy-on-write), instead of each worker importing them again on every apply (~2 s of CPU each).
Nothing here may raise: the fork server stops at a preload error that is not an ImportError,
and then no worker could start. A library that fails to import is left to the stage that needs
it, which fails with a clear message.
"""

from __future__ import annotations

import contextlib
import importlib

from mlopsctl.execute.executors import WARM_MODULES

with contextlib.suppress(Exception):  # skops.io as train and evaluate import it
    from mlopsctl.stages.modelio import skops_io

    skops_io()
for _name in WARM_MODULES:
    with contextlib.suppress(Exception):
        importlib.import_module(_name)
