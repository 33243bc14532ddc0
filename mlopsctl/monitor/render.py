"""Views of monitoring results: JSON (the stable format), markdown (a PR comment), HTML.

Renderers only show values; every verdict is decided in :mod:`mlopsctl.monitor.check`. The HTML
page is self-contained: inline CSS and inline SVG histograms, no script and no external URL, so
it opens offline and from a CI artefact store.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

from mlopsctl.fsutil import atomic_write
from mlopsctl.monitor.check import FeatureResult, Histogram, MonitorResult

#: bars drawn per histogram; further categories are pooled into one bar
MAX_BARS = 20


def render_json(results: Sequence[MonitorResult]) -> str:
    """The ``monitor --format json`` document: a list, one object per use case."""
    doc = [r.to_json() for r in results]
    return json.dumps(doc, sort_keys=True, indent=2, allow_nan=False) + "\n"


def _value(f: FeatureResult) -> str:
    return "n/a" if f.value is None else f"{f.value:.4g}"


def _verdict(f: FeatureResult) -> str:
    return "DRIFT" if f.drifted else ("no data" if f.value is None else "ok")


def render_markdown(results: Sequence[MonitorResult]) -> str:
    """A pull-request comment: one section per use case, a table of features, the problems."""
    lines: list[str] = []
    for r in results:
        status = "**breach**" if r.breach else "ok"
        lines += [f"### Monitoring: {r.usecase} ({status}, {r.rows} rows)", ""]
        rows = [*r.features, *([r.prediction] if r.prediction else [])]
        if rows:
            lines += [
                "| feature | statistic | value | threshold | missing | verdict |",
                "| --- | --- | ---: | ---: | ---: | --- |",
            ]
            for f in rows:
                missing = "" if f.missing is None else f"{f.missing:.1%}"
                verdict = f"**{_verdict(f)}**" if f.drifted else _verdict(f)
                lines.append(
                    f"| {_md(f.name)} | {f.statistic} | {_value(f)} | {f.threshold:g} "
                    f"| {missing} | {verdict} |"
                )
            lines.append("")
        if r.problems:
            lines += ["Problems:", "", *[f"- {_md(p)}" for p in r.problems], ""]
        if r.performance:
            lines += ["| metric | value | bound | holds |", "| --- | ---: | --- | --- |"]
            for name, m in sorted(r.performance.items()):
                value = "n/a" if m.value is None else f"{m.value:.4g}"
                lines.append(f"| {name} | {value} | {_bound(m.min, m.max)} | {m.holds} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _bound(low: float | None, high: float | None) -> str:
    parts = [f">= {low:g}"] if low is not None else []
    if high is not None:
        parts.append(f"<= {high:g}")
    return ", ".join(parts)


# --- HTML -------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px}
td.num{text-align:right}.drift{color:#b00020;font-weight:bold}.ok{color:#1b5e20}
.feature{display:inline-block;margin:0 1.5em 1.5em 0;vertical-align:top}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}
"""
_REF, _CUR = "#9e9e9e", "#1565c0"


def render_html(results: Sequence[MonitorResult]) -> str:
    """One self-contained page: per use case the feature table, problems, performance and a
    reference-vs-current histogram per feature (inline SVG)."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>mlopsctl monitoring</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Monitoring</h1>",
        f'<p class="legend"><span style="background:{_REF}"></span>reference'
        f'<span style="background:{_CUR}"></span>current</p>',
    ]
    for r in results:
        verdict = '<span class="drift">breach</span>' if r.breach else '<span class="ok">ok</span>'
        out.append(f"<h2>{e(r.usecase)}: {verdict} ({r.rows} rows)</h2>")
        rows = [*r.features, *([r.prediction] if r.prediction else [])]
        out.append(
            "<table><tr><th>feature</th><th>statistic</th><th>value</th><th>threshold</th>"
            "<th>missing</th><th>verdict</th></tr>"
        )
        for f in rows:
            cls = "drift" if f.drifted else "ok"
            missing = "" if f.missing is None else f"{f.missing:.1%}"
            out.append(
                f"<tr><td>{e(f.name)}</td><td>{e(f.statistic)}</td>"
                f'<td class="num">{_value(f)}</td><td class="num">{f.threshold:g}</td>'
                f'<td class="num">{missing}</td><td class="{cls}">{_verdict(f)}</td></tr>'
            )
        out.append("</table>")
        if r.problems:
            out.append("<h3>Problems</h3><ul>")
            out += [f"<li>{e(p)}</li>" for p in r.problems]
            out.append("</ul>")
        if r.performance:
            out.append(
                "<h3>Performance</h3><table><tr><th>metric</th><th>value</th><th>bound</th>"
                "<th>holds</th></tr>"
            )
            for name, m in sorted(r.performance.items()):
                value = "n/a" if m.value is None else f"{m.value:.4g}"
                cls = "ok" if m.holds else "drift"
                out.append(
                    f'<tr><td>{e(name)}</td><td class="num">{value}</td>'
                    f'<td>{e(_bound(m.min, m.max))}</td><td class="{cls}">{m.holds}</td></tr>'
                )
            out.append("</table>")
        out.append("<h3>Distributions</h3>")
        for f in rows:
            if f.histogram is not None:
                out.append(
                    f'<div class="feature"><h4>{e(f.name)} ({e(f.statistic)} {_value(f)})</h4>'
                    f"{svg_histogram(f.histogram)}</div>"
                )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _pooled(h: Histogram) -> Histogram:
    if len(h.labels) <= MAX_BARS:
        return h
    order = sorted(range(len(h.labels)), key=lambda i: -max(h.reference[i], h.current[i]))
    keep = sorted(order[: MAX_BARS - 1])
    rest = [i for i in range(len(h.labels)) if i not in set(keep)]
    return Histogram(
        (*[h.labels[i] for i in keep], f"({len(rest)} more)"),
        (*[h.reference[i] for i in keep], sum(h.reference[i] for i in rest)),
        (*[h.current[i] for i in keep], sum(h.current[i] for i in rest)),
    )


def svg_histogram(histogram: Histogram, width: int = 470, height: int = 210) -> str:
    """Grouped bars (reference, current) of the proportion in each bin, as inline SVG."""
    h = _pooled(histogram)
    n = max(len(h.labels), 1)
    top = max([*h.reference, *h.current, 1e-12])
    left, plot_h, base = 80, height - 80, height - 70  # room for the slanted bin labels
    slot = (width - left - 10) / n
    bar = max(slot / 2 - 1, 1)
    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
        f'<line x1="{left}" y1="{base}" x2="{width - 10}" y2="{base}" stroke="#555"/>',
    ]
    for i, label in enumerate(h.labels):
        x = left + i * slot
        for j, (value, colour) in enumerate(((h.reference[i], _REF), (h.current[i], _CUR))):
            bar_h = plot_h * value / top
            parts.append(
                f'<rect x="{x + j * bar:.1f}" y="{base - bar_h:.1f}" width="{bar:.1f}" '
                f'height="{bar_h:.1f}" fill="{colour}"><title>{html.escape(label)}: '
                f"{'reference' if j == 0 else 'current'} {value:.2%}</title></rect>"
            )
        parts.append(
            f'<text x="{x + slot / 2:.1f}" y="{base + 12}" font-size="9" text-anchor="end" '
            f'transform="rotate(-35 {x + slot / 2:.1f} {base + 12})">'
            f"{html.escape(label[:22])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


# --- files ------------------------------------------------------------------------------------


def write_reports(directory: Path, results: Sequence[MonitorResult]) -> list[Path]:
    """Write ``monitoring.json``, ``report.html`` and ``report.md`` into *directory*, each
    atomically (temp file + rename): the files of ``reports/<name>/monitoring/``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "monitoring.json": render_json(results),
        "report.html": render_html(results),
        "report.md": render_markdown(results),
    }
    written = []
    for name, text in files.items():
        target = directory / name
        atomic_write(target, text)
        written.append(target)
    return written
