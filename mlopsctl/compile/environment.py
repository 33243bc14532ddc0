"""The software environment a trained model depends on, read without importing anything heavy."""

from __future__ import annotations

import functools
import platform
from importlib import metadata

from mlopsctl import __version__

TRACKED = ("numpy", "pandas", "scikit-learn")


@functools.cache
def environment() -> dict[str, str]:
    """Versions of Python, mlopsctl and the libraries behind a model (from package metadata)."""
    env = {"python": platform.python_version(), "mlopsctl": __version__}
    for dist in TRACKED:
        try:
            env[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            env[dist] = "missing"
    return env


def parse_env_arg(text: str) -> dict[str, str]:
    """``"numpy=2.1 python=3.11.7"`` -> ``{"numpy": "2.1", "python": "3.11.7"}``."""
    out = {}
    for item in text.split():
        name, _, version = item.partition("=")
        out[name] = version
    return out
