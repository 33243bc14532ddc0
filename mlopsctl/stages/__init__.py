"""The built-in stage kinds. The only code that imports pandas and scikit-learn (inside functions).

:func:`stage_function` imports a kind's module on first use, so that nothing here costs
anything on the plan path.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from mlopsctl.stages.base import StageContext

StageFunction = Callable[[StageContext], dict[str, Any]]

_MODULES = {
    "ingest": "mlopsctl.stages.ingest",
    "validate": "mlopsctl.stages.validate",
    "split": "mlopsctl.stages.split",
    "train": "mlopsctl.stages.train",
    "evaluate": "mlopsctl.stages.evaluate",
    "gate": "mlopsctl.stages.gate",
    "deploy": "mlopsctl.stages.deploy",
    "monitor": "mlopsctl.stages.monitor",
}


def stage_function(kind: str) -> StageFunction:
    """The ``run`` function of built-in stage *kind*."""
    module = importlib.import_module(_MODULES[kind])
    fn: StageFunction = module.run
    return fn
