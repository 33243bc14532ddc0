"""SIGINT and SIGTERM: stop at once, but never in the middle of a write that records state.

The CLI installs :func:`install`; from then on either signal raises :class:`Interrupted` (a
``KeyboardInterrupt``, so that ``except Exception`` in stage code does not swallow it) wherever
the main thread is. Code that writes the ledger (dvc.lock and the DVC cache, the git commit)
runs inside :func:`deferred`: a signal that arrives there is held until the block is done, so
that what is recorded is recorded whole. Imports nothing of ours.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

_depth = 0  # nesting of deferred() blocks
_pending: int | None = None  # a signal that arrived inside one


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``exit_code`` is 128 + the signal number (130, 143)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        self.detail = ""  # what was and was not recorded, filled in by the command


def _handler(signum: int, _frame: FrameType | None) -> None:
    global _pending
    if _depth:
        _pending = _pending or signum
        return
    raise Interrupted(signum)


def install() -> None:
    """Turn SIGINT and SIGTERM into :class:`Interrupted` in the main thread.

    A signal the process was started with ignored (``nohup``, a background job) stays ignored.
    """
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _handler)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block is done, then raise :class:`Interrupted`."""
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth and _pending is not None:
            signum, _pending = _pending, None
            raise Interrupted(signum)
