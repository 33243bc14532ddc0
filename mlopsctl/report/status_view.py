"""`mlopsctl status` as text: one line per use case, then why it is not in sync."""

from __future__ import annotations

from collections.abc import Sequence

from mlopsctl.plan.status import UseCaseStatus

_STYLE = {
    "in sync": "green",
    "out of sync": "yellow",
    "failing gate": "red",
    "never applied": "cyan",
}


def status_lines(statuses: Sequence[UseCaseStatus], remote_note: str = "") -> list[tuple[str, str]]:
    """(style, text) lines for :func:`mlopsctl.report.console.print_lines`."""
    lines: list[tuple[str, str]] = []
    width = max((len(s.name) for s in statuses), default=0)
    for s in statuses:
        metrics = ", ".join(
            f"{k}={v:.4g}" for k, v in sorted(s.metrics.items()) if isinstance(v, float)
        )
        pushed = ""
        if s.not_pushed:
            pushed = f"  not pushed: {len(s.not_pushed)} object(s)"
        monitored = f"  monitoring {s.monitoring}" if s.monitoring else ""
        version = f"  {s.version}" if s.version else ""
        line = (
            f"{s.name.ljust(width)}  {s.state:<13}  gate {s.gate:<7}{version}  {metrics}"
            f"{monitored}{pushed}"
        )
        style = "red" if s.not_pushed else _STYLE.get(s.state, "")
        if s.monitoring == "breach" and style == "green":
            style = "yellow"
        lines.append((style, line.rstrip()))
        if s.deployment is not None:
            style = "green" if s.deployment == "in sync" else "yellow"
            lines.append((style, f"{' ' * width}    deploy: {s.deployment}"))
        if s.deployed_to:
            where = ", ".join(f"{v} in {stage}" for stage, v in sorted(s.deployed_to.items()))
            lines.append(("", f"{' ' * width}    deployed: {where}"))
        lines += [("", f"{' ' * width}    {r}") for r in s.reasons]
        lines += [("", f"{' ' * width}    monitoring: {r}") for r in s.monitoring_reasons]
        lines += [("", f"{' ' * width}    not on the remote: {p}") for p in s.not_pushed or ()]
    if remote_note:
        lines.append(("yellow", remote_note))
    return lines
