"""The plan as text (terminal), markdown (pull-request comment) and JSON (machines)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from mlopsctl.plan.model import Action, Plan, StagePlan

_SYMBOL_STYLE = {"+": "green", "~": "yellow", "<": "cyan", "-": "red", "!": "red bold"}


def symbol(sp: StagePlan) -> str:
    if sp.action is Action.RUN and sp.reasons and sp.reasons[0].kind == "new-usecase":
        return "+"
    if sp.action is Action.RUN and any(r.kind == "new-stage" for r in sp.reasons):
        return "+"
    return sp.action.symbol


def summary_line(plan: Plan) -> str:
    c = plan.counts()
    parts = [f"{c['run']} to run"]
    if c["restore"]:
        parts.append(f"{c['restore']} to restore from cache")
    parts.append(f"{c['up-to-date']} up to date")
    parts.append(f"{c['remove']} to remove")
    if c["blocked"]:
        parts.append(f"{c['blocked']} blocked")
    return "Plan: " + ", ".join(parts) + "."


def _action_label(sp: StagePlan) -> str:
    if sp.action is Action.RESTORE:
        return "restore from cache: "
    if sp.action is Action.BLOCKED:
        return "blocked: "
    return ""


def _runs_on(group: list[StagePlan]) -> str:
    """ " (on dask tcp://...)" after a use case whose stages run on a cluster (one per use case)."""
    where = next((sp.runs_on for sp in group if sp.runs_on), "")
    return f" (on {where})" if where else ""


def by_usecase(stages: Iterable[StagePlan]) -> list[tuple[str, list[StagePlan]]]:
    """The stages grouped by use case: use cases in order of first appearance, and each one's
    stages in the plan's order. The plan is in topological order over all use cases, which
    interleaves them; a reader wants each use case once."""
    groups: dict[str, list[StagePlan]] = {}
    for sp in stages:
        groups.setdefault(sp.usecase, []).append(sp)
    return list(groups.items())


def text_lines(plan: Plan) -> list[tuple[str, str]]:
    """(style, text) lines; the style is a rich style name or ''."""
    lines: list[tuple[str, str]] = []
    changed = [s for s in plan.stages if s.action is not Action.SKIP]
    if not changed:
        n = len(plan.stages)
        return [("green", f"No changes. Everything is up to date ({n} stage{'s' * (n != 1)}).")]
    width = max(len(s.name) for s in changed)
    for usecase, group in by_usecase(changed):
        lines.append(("bold", usecase + _runs_on(group)))
        for sp in group:
            sym = symbol(sp)
            reasons = [r.message for r in sp.reasons] or [""]
            first = _action_label(sp) + reasons[0]
            if sp.note:
                first += f" ({sp.note})"
            lines.append((_SYMBOL_STYLE.get(sym, ""), f"  {sym} {sp.name.ljust(width)}   {first}"))
            for extra in reasons[1:]:
                lines.append(("", f"    {' ' * width}   {extra}"))
    lines.append(("bold", summary_line(plan)))
    return lines


def render_text(plan: Plan) -> str:
    return "\n".join(text for _style, text in text_lines(plan))


def print_text(plan: Plan) -> None:
    """Print the plan; colours only on a terminal and never with NO_COLOR."""
    from mlopsctl.report.console import print_lines

    print_lines(text_lines(plan))


def render_markdown(plan: Plan) -> str:
    out = ["### mlopsctl plan", ""]
    changed = [s for s in plan.stages if s.action is not Action.SKIP]
    out.append(f"**{summary_line(plan)}**")
    out.append("")
    if not changed:
        out.append("No changes. Everything is up to date.")
    else:
        out.append("| use case | stage | action | why |")
        out.append("| --- | --- | --- | --- |")
        for usecase, group in by_usecase(changed):
            for i, sp in enumerate(group):
                why = "<br>".join(_md_escape(r.message) for r in sp.reasons)
                # each use case once, atop its rows
                name = _md_escape(usecase + _runs_on(group)) if i == 0 else ""
                out.append(f"| {name} | `{sp.name}` | {symbol(sp)} {sp.action.value} | {why} |")
    up = [s for s in plan.stages if s.action is Action.SKIP]
    if up:
        out.append("")
        out.append(f"<details><summary>{len(up)} stages up to date</summary>")
        out.append("")
        out.append(", ".join(f"`{s.id}`" for _uc, group in by_usecase(up) for s in group))
        out.append("")
        out.append("</details>")
    out.append("")
    out.append(f"<sub>plan {plan.id}, mlopsctl {plan.inputs.mlopsctl_version}</sub>")
    return "\n".join(out) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")


def render_json(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), indent=2, sort_keys=True, default=str) + "\n"
