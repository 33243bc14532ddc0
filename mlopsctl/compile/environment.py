"""The software environment a trained model depends on, read without importing anything heavy."""

from __future__ import annotations

import functools
import os
import platform
import re
import sys

from mlopsctl import __version__

TRACKED = ("numpy", "pandas", "scikit-learn")
_DIST_INFO = re.compile(r"^([A-Za-z0-9_.]+)-([^-]+)\.dist-info$")


@functools.cache
def environment() -> dict[str, str]:
    """Versions of Python, mlopsctl and the libraries behind a model (from package metadata).

    Read from the ``NAME-VERSION.dist-info`` directory names on sys.path: importing
    importlib.metadata alone would cost a no-op plan more than all of this.
    """
    env = {"python": platform.python_version(), "mlopsctl": __version__}
    wanted = {_normalise(d): d for d in TRACKED}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            m = _DIST_INFO.match(name)
            if m and _normalise(m.group(1)) in wanted:
                env.setdefault(wanted.pop(_normalise(m.group(1))), m.group(2))
        if not wanted:
            break
    if wanted:  # installed some other way (an egg, a zip): ask the slow, general API
        from importlib import metadata

        for dist in wanted.values():
            try:
                env[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                env[dist] = "missing"
    return env


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def parse_env_arg(text: str) -> dict[str, str]:
    """``"numpy=2.1 python=3.11.7"`` -> ``{"numpy": "2.1", "python": "3.11.7"}``."""
    out = {}
    for item in text.split():
        name, _, version = item.partition("=")
        out[name] = version
    return out
