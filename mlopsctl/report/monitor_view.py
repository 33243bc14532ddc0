"""`mlopsctl monitor` as text: per use case its verdict, then each broken threshold.

Works on the stable JSON form (monitor.schema.json), so that this layer never imports the
monitoring package (which needs numpy and pandas).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlopsctl.plan.monitoring import reasons


def monitor_lines(results: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(style, text) lines for :func:`mlopsctl.report.console.print_lines`."""
    lines: list[tuple[str, str]] = []
    for r in results:
        verdict = "BREACH" if r["breach"] else "ok"
        features = r.get("features", [])
        drifted = sum(1 for f in features if f.get("drifted"))
        lines.append(
            (
                "red bold" if r["breach"] else "green",
                f"{r['usecase']}: {verdict} ({r['rows']} rows, {drifted} of {len(features)} "
                "features drifted)",
            )
        )
        lines += [("", f"  {reason}") for reason in reasons(r)]
    return lines
