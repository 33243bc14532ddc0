"""`mlopsctl history` as text and JSON."""

from __future__ import annotations

import json

from mlopsctl.gitops.history import History, HistoryRow
from mlopsctl.report.diff_view import number, value


def _metric_names(h: History) -> list[str]:
    """The goal metrics of the newest gate verdict, else the first three metrics."""
    for row in h.rows:
        if row.state.gate and row.state.gate.checks:
            return [c.metric for c in row.state.gate.checks]
    names = sorted({m for row in h.rows for m in row.state.metrics})
    return names[:3]


def _data(row: HistoryRow) -> str:
    return " ".join(f"{path.rsplit('/', 1)[-1]}:{md5[:7]}" for path, md5 in row.state.data.items())


def text_lines(h: History) -> list[tuple[str, str]]:
    """(style, text): a table, newest first, each row followed by the params it changed."""
    if not h.rows:
        return [("", f"{h.usecase}: nothing applied in this history yet")]
    n = len(h.rows)
    lines: list[tuple[str, str]] = [
        ("bold", f"{h.usecase}: {n} applied state{'s' * (n != 1)}, newest first")
    ]
    metrics = _metric_names(h)
    monitored = any(r.state.monitoring for r in h.rows)
    head = ["commit", "date", "author", "version", "gate", *metrics]
    head += ["monitoring"] * monitored + ["data"]
    rows = [head]
    for r in h.rows:
        s = r.state
        cells = [r.commit[:7], r.date[:10], r.author.split(" <")[0], r.version or "-"]
        cells += [s.gate.word if s.gate else "-"]
        cells += [number(s.metrics.get(m)) for m in metrics]
        cells += [s.monitoring.word if s.monitoring else "-"] * monitored
        cells += [_data(r) or "-"]
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    lines.append(("bold", fmt(rows[0])))
    pad = " " * (widths[0] + 2)
    for i, (r, cells) in enumerate(zip(h.rows, rows[1:], strict=True)):
        style = "red" if r.state.gate and not r.state.gate.passed else ""
        lines.append((style, fmt(cells)))
        if i == len(h.rows) - 1:
            lines.append(("", f"{pad}first applied state ({len(r.state.params)} params)"))
        else:
            for p in r.params_changed:
                old, new = value(p.old, p.in_old), value(p.new, p.in_new)
                lines.append(("", f"{pad}{p.path}: {old} -> {new}"))
        for problem in r.state.problems:
            lines.append(("yellow", f"{pad}warning: {problem}"))
    return lines


def render_json(h: History) -> str:
    return json.dumps(h.to_dict(), indent=2, sort_keys=True) + "\n"
