"""`mlopsctl diff` as text, JSON and markdown; the metrics table of the pull-request comment."""

from __future__ import annotations

import json
from typing import Any

from mlopsctl.gitops.diff import Diff, MetricChange, ParamChange, UseCaseDiff
from mlopsctl.gitops.revision import clean

UP, DOWN = "▲", "▼"
_MAX_VALUE = 60  # a param value longer than this is cut in text and markdown (JSON has it whole)


def number(value: float | None) -> str:
    """A metric for people: counts as they are, others to four significant decimals."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 1e6 or abs(value) < 1e-3:
        return f"{value:.4g}"
    return f"{value:.4f}".rstrip("0").rstrip(".")


def change(m: MetricChange) -> str:
    """``+0.0123 (+1.25%) ▲ better``; ``""`` when unchanged or one side is missing."""
    delta = m.delta
    if delta is None:
        return "new" if m.old is None and m.new is not None else ""
    if not delta:
        return "0"
    text = ("+" if delta > 0 else "-") + number(abs(delta))
    if m.pct is not None:
        text += f" ({m.pct:+.2f}%)"
    text += " " + (UP if delta > 0 else DOWN)
    if m.better is not None:
        text += " better" if m.better else " worse"
    return text


def value(v: Any, present: bool = True) -> str:
    """A param value on one line: strings as they are, others as JSON, cut when long."""
    if not present:
        return "-"
    text = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
    return clean(text, _MAX_VALUE)


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        (indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))).rstrip()
        for r in rows
    ]


def _verdicts(u: UseCaseDiff, old: str, new: str) -> list[str]:
    out = []
    for what, a, b in (
        ("gate", u.old.gate, u.new.gate),
        ("monitoring", u.old.monitoring, u.new.monitoring),
    ):
        if a is None and b is None:
            continue
        wa, wb = (x.word if x else "-" for x in (a, b))
        out.append(f"{what}: {wa}" if wa == wb else f"{what}: {wa} ({old}) -> {wb} ({new})")
    return out


def _shown(u: UseCaseDiff, include_all: bool) -> tuple[list[ParamChange], list[MetricChange]]:
    params = [p for p in u.params if include_all or p.changed]
    metrics = [m for m in u.metrics if include_all or m.changed]
    return params, metrics


def text_lines(d: Diff, include_all: bool = False) -> list[tuple[str, str]]:
    """(style, text) lines."""
    old, new = d.old.label, d.new.label
    head = f"{old} ({d.old.short})" if d.old.commit else old
    tail = f"{new} ({d.new.short})" if d.new.commit else new
    lines: list[tuple[str, str]] = [("", f"Comparing {head} with {tail}")]
    for side in (d.old, d.new):
        lines += [("yellow", f"warning: {side.label}: {p}") for p in side.problems]
    if not d.usecases:
        lines.append(("", "Nothing applied at either revision."))
    for u in d.usecases:
        params, metrics = _shown(u, include_all)
        verdicts = _verdicts(u, old, new)
        problems = [f"{old}: {p}" for p in u.old.problems] + [f"{new}: {p}" for p in u.new.problems]
        if u.status == "absent":
            lines.append(("", f"{u.name}: applied at neither"))
            continue
        if not params and not metrics and u.status == "unchanged" and not problems:
            lines.append(("", f"{u.name}: no changes"))
            continue
        lines.append(("bold", f"{u.name} ({u.status})"))
        if params:
            rows = [["param", old, new]]
            rows += [[p.path, value(p.old, p.in_old), value(p.new, p.in_new)] for p in params]
            lines += [("", ln) for ln in _table(rows)]
        if metrics:
            rows = [["metric", old, new, "change"]]
            rows += [[m.name, number(m.old), number(m.new), change(m)] for m in metrics]
            lines += [("", ln) for ln in _table(rows)]
        for name, (a, b) in u.data_changes.items():
            lines.append(("", f"  data {name}: {(a or '-')[:7]} -> {(b or '-')[:7]}"))
        lines += [("", "  " + v) for v in verdicts]
        lines += [("yellow", f"  warning: {p}") for p in problems]
    return lines


def render_text(d: Diff, include_all: bool = False) -> str:
    return "\n".join(text for _s, text in text_lines(d, include_all)) + "\n"


def render_json(d: Diff, include_all: bool = False) -> str:
    return json.dumps(d.to_dict(include_all), indent=2, sort_keys=True) + "\n"


def md_escape(text: str) -> str:
    return (
        text.replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("<", "&lt;")
        .replace("`", "'")
        .replace("\n", " ")
    )


def metrics_table(u: UseCaseDiff, old: str, new: str, include_all: bool = True) -> list[str]:
    """The metrics of one use case as a markdown table: old, new, change (with arrows)."""
    metrics = [m for m in u.metrics if include_all or m.changed]
    if not metrics:
        return []
    out = [
        f"| metric | {md_escape(old)} | {md_escape(new)} | change |",
        "| --- | ---: | ---: | --- |",
    ]
    for m in metrics:
        out.append(
            f"| {md_escape(m.name)} | {number(m.old)} | {number(m.new)} | {md_escape(change(m))} |"
        )
    return out


def params_table(u: UseCaseDiff, old: str, new: str, include_all: bool = False) -> list[str]:
    params = [p for p in u.params if include_all or p.changed]
    if not params:
        return []
    out = [f"| param | {md_escape(old)} | {md_escape(new)} |", "| --- | --- | --- |"]
    for p in params:
        a, b = value(p.old, p.in_old), value(p.new, p.in_new)
        out.append(f"| `{md_escape(p.path)}` | {md_escape(a)} | {md_escape(b)} |")
    return out


def verdict_lines(u: UseCaseDiff, old: str, new: str) -> list[str]:
    """Gate and monitoring verdicts, one markdown line each."""
    return [md_escape(v) for v in _verdicts(u, old, new)]


def render_markdown(d: Diff, include_all: bool = False) -> str:
    old, new = d.old.label, d.new.label
    out = [f"### mlopsctl diff: `{md_escape(old)}` vs `{md_escape(new)}`", ""]
    for side in (d.old, d.new):
        out += [f"> warning: {md_escape(side.label)}: {md_escape(p)}" for p in side.problems]
    for u in d.usecases:
        params = params_table(u, old, new, include_all)
        metrics = metrics_table(u, old, new, include_all)
        if not params and not metrics and u.status == "unchanged":
            out += [f"**{u.name}**: no changes", ""]
            continue
        out += [f"#### {u.name} ({u.status})", ""]
        for block in (params, metrics):
            if block:
                out += [*block, ""]
        for line in verdict_lines(u, old, new):
            out += [f"- {line}"]
        for p in [*u.old.problems, *u.new.problems]:
            out += [f"- warning: {md_escape(p)}"]
        out.append("")
    return "\n".join(out).rstrip() + "\n"
