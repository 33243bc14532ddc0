"""Imported only by the local pool's fork server (its preload): the server leaves at once.

The fork server lives until the apply process exits; then it exits too. With the stages'
libraries loaded (:mod:`mlopsctl.execute.warm`) an ordinary interpreter shutdown takes ~0.4 s,
and all that time the server holds the apply's stdout and stderr open: a CI log or
``mlopsctl apply | tee`` waited that long after apply had ended. The server has nothing to
write or clean up (the workers it forks leave through ``os._exit`` too), so as soon as its
shutdown begins it flushes its streams and leaves through ``os._exit``. The exit handlers
registered before this one (it is the server's first preload: multiprocessing's and logging's)
are skipped; in the server they have nothing to do.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys


def _leave() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


atexit.register(_leave)
