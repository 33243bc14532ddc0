"""The plan as text (terminal), markdown (pull-request comment) and JSON (machines)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from mlopsctl.plan.model import Action, Plan, StagePlan

if TYPE_CHECKING:
    from mlopsctl.compile.graph import Graph
    from mlopsctl.gitops.review import Review

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
    if plan.remotes:
        n = len(plan.remotes)
        parts.append(f"{n} use case{'s' * (n != 1)} to move to another DVC remote")
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
    if not changed and not plan.remotes:
        n = len(plan.stages)
        return [("green", f"No changes. Everything is up to date ({n} stage{'s' * (n != 1)}).")]
    lines += [("yellow", f"~ {r.message}") for r in plan.remotes]
    width = max((len(s.name) for s in changed), default=0)
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


#: the first line of the comment: the key a CI step finds its sticky comment by
MARKER = "<!-- mlopsctl:plan -->"


def render_markdown(plan: Plan, review: Review | None = None, graph: Graph | None = None) -> str:
    """The pull-request comment: the plan by use case; with *review*, each use case's metrics
    and verdicts on the base against the branch; with *graph*, the DAG coloured by action."""
    out = [MARKER, "### mlopsctl plan", ""]
    changed = [s for s in plan.stages if s.action is not Action.SKIP]
    out.append(f"**{summary_line(plan)}**")
    out.append("")
    for r in plan.remotes:
        out.append(f"- {_md_escape(r.message)}")
    if plan.remotes:
        out.append("")
    if not changed:
        out.append("No stage changes." if plan.remotes else "No changes. Everything is up to date.")
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
    if review is not None and review.remotes:
        from mlopsctl.report.diff_view import md_escape

        out += ["", "### DVC remotes changed on this branch", ""]
        out += [f"- {md_escape(line)}" for line in review.remotes]
        out += ["", "apply on merge pushes artifacts and data where these say."]
    if review is not None:
        out += ["", *_review_lines(plan, review)]
    if graph is not None:
        out += ["", *_mermaid_lines(plan, graph)]
    out.append("")
    out.append(f"<sub>plan {plan.id}, mlopsctl {plan.inputs.mlopsctl_version}</sub>")
    return "\n".join(out) + "\n"


def _review_lines(plan: Plan, review: Review) -> list[str]:
    # here, not at the top: text and JSON plans need none of it
    from mlopsctl.report.diff_view import (
        md_escape,
        metrics_table,
        number,
        params_table,
        verdict_lines,
    )

    d = review.diff
    if d is None:
        return ["### Metrics", "", review.note]
    base, branch = d.old.label, d.new.label
    at = f" ({d.old.short})" if d.old.commit else ""
    out = [f"### Metrics: `{md_escape(base)}`{at} vs this {branch}", ""]
    for side in (d.old, d.new):
        out += [f"> warning: {md_escape(side.label)}: {md_escape(p)}" for p in side.problems]
    for u in d.usecases:
        out.append(f"#### {u.name}")
        out.append("")
        if u.status == "absent":
            out += ["Not applied yet, neither on the base nor on this branch.", ""]
            continue
        if u.status == "unchanged":
            shown = ", ".join(f"{md_escape(m.name)} {number(m.old)}" for m in u.metrics[:4])
            gate = f"; gate {u.old.gate.word}" if u.old.gate else ""
            out.append(
                "Not applied on this branch: the base's last apply stands"
                + (f" ({shown}{gate})." if shown or gate else ".")
            )
            out.append("")
            continue
        if u.status == "added":
            out += ["New on this branch: nothing applied on the base.", ""]
        elif u.status == "removed":
            out += ["Removed on this branch.", ""]
        for block in (params_table(u, base, branch), metrics_table(u, base, branch)):
            if block:
                out += [*block, ""]
        lines = verdict_lines(u, base, branch)
        reasons = u.new.monitoring.reasons if u.new.monitoring else ()
        lines += [f"monitoring ({branch}): {md_escape(r)}" for r in reasons]
        lines += [f"warning: {md_escape(p)}" for p in (*u.old.problems, *u.new.problems)]
        out += [f"- {line}" for line in lines]
        if lines:
            out.append("")
    return out[:-1] if out[-1] == "" else out


#: one class per plan action; fill and stroke as `mlopsctl graph` draws them
_CLASSES = {
    "run": "fill:#fde68a,stroke:#b45309",
    "restore": "fill:#cffafe,stroke:#0e7490",
    "uptodate": "fill:#dcfce7,stroke:#15803d",
    "remove": "fill:#e5e7eb,stroke:#6b7280,stroke-dasharray:4",
    "blocked": "fill:#fecaca,stroke:#b91c1c",
}
_CLASS_OF = {
    Action.RUN: "run",
    Action.RESTORE: "restore",
    Action.SKIP: "uptodate",
    Action.REMOVE: "remove",
    Action.BLOCKED: "blocked",
}


def _mermaid_lines(plan: Plan, graph: Graph) -> list[str]:
    """The compiled DAG with every edge (as `dvc dag` draws it, not reduced), each stage
    coloured by its action; removed stages are drawn without edges."""
    action = {sp.id: sp.action for sp in plan.stages}
    ids = [*graph.order, *(sp.id for sp in plan.stages if sp.id not in graph.stages)]
    node = {sid: f"n{i}" for i, sid in enumerate(ids)}
    by_uc: dict[str, list[str]] = {}
    for sid in ids:
        by_uc.setdefault(sid.split("/", 1)[0], []).append(sid)
    out = ["### Pipeline", "", "```mermaid", "flowchart TD"]
    for i, (uc, members) in enumerate(by_uc.items()):
        out.append(f'  subgraph g{i}["{_mermaid_text(uc)}"]')
        out += [f'    {node[s]}["{_mermaid_text(s.split("/", 1)[1])}"]' for s in members]
        out.append("  end")
    for sid in graph.order:
        out += [f"  {node[u]} --> {node[sid]}" for u in graph.upstream[sid]]
    for name, css in _CLASSES.items():
        out.append(f"  classDef {name} {css}")
    for name in _CLASSES:
        members = [node[s] for s in ids if _CLASS_OF.get(action.get(s, Action.SKIP)) == name]
        if members:
            out.append(f"  class {','.join(members)} {name}")
    out.append("```")
    out.append("")
    out.append(
        "<sub>yellow: run, blue: restore from cache, green: up to date, grey: remove, "
        "red: blocked</sub>"
    )
    return out


def _mermaid_text(text: str) -> str:
    return text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;")


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")


def render_json(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), indent=2, sort_keys=True, default=str) + "\n"
