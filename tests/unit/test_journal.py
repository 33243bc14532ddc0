"""The journal of completed stages: a signal that arrives while a line is written waits for it."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from mlopsctl import interrupts
from mlopsctl.execute.record import JOURNAL, append_journal, read_journal
from mlopsctl.interrupts import Interrupted


@pytest.fixture
def handlers():
    """mlopsctl's SIGINT/SIGTERM handlers for the test, the old ones back after it."""
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    interrupts.install()
    yield
    for s, h in old.items():
        signal.signal(s, h)


def test_a_signal_in_the_middle_of_a_journal_line_waits_for_the_line(
    tmp_path: Path, handlers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    append_journal(tmp_path, {"stage": "a", "id": "uc.a", "fp": "1", "outs": {}})
    real_open = Path.open

    def open_then_signal(self: Path, *args: Any, **kwargs: Any) -> Any:
        # SIGTERM lands once the file is open, before the line is written (a CI runner's
        # cancel at that moment left an empty journal: the completed stage was forgotten)
        fh = real_open(self, *args, **kwargs)
        if self.name == Path(JOURNAL).name and "a" in (
            args[0] if args else kwargs.get("mode", "r")
        ):
            os.kill(os.getpid(), signal.SIGTERM)
        return fh

    monkeypatch.setattr(Path, "open", open_then_signal)
    with pytest.raises(Interrupted) as info:
        append_journal(tmp_path, {"stage": "b", "id": "uc.b", "fp": "2", "outs": {"x": "m"}})
    assert info.value.exit_code == 143
    # the interrupted line is whole: both stages are known completed
    assert [e["stage"] for e in read_journal(tmp_path)] == ["a", "b"]
    assert (tmp_path / JOURNAL).read_text().endswith('"outs": {"x": "m"}}\n')
