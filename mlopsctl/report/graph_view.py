"""The compiled DAG as ASCII, Mermaid or Graphviz dot, each stage marked with its plan action."""

from __future__ import annotations

from collections.abc import Mapping

from mlopsctl.compile.graph import Graph

_MERMAID_CLASS = {
    "run": "fill:#fde68a,stroke:#b45309",
    "restore": "fill:#cffafe,stroke:#0e7490",
    "up-to-date": "fill:#dcfce7,stroke:#15803d",
    "blocked": "fill:#fecaca,stroke:#b91c1c",
}
_DOT_COLOR = {"run": "gold", "restore": "lightblue", "up-to-date": "palegreen", "blocked": "salmon"}
STYLE = {"run": "yellow", "restore": "cyan", "up-to-date": "green", "blocked": "red"}


def reduced_edges(graph: Graph) -> list[tuple[str, str]]:
    """Edges without the ones implied by longer paths (ingest -> split when ingest -> validate
    -> split), so drawings stay readable."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(graph.order)
    g.add_edges_from((u, v) for v in graph.order for u in graph.upstream[v])
    reduced = nx.transitive_reduction(g)
    position = {sid: i for i, sid in enumerate(graph.order)}
    return sorted(reduced.edges(), key=lambda e: (position[e[1]], position[e[0]]))


def _node(sid: str) -> str:
    return sid.replace("/", "__").replace("-", "_")


def render_mermaid(graph: Graph, status: Mapping[str, str]) -> str:
    lines = ["flowchart LR"]
    for uc in graph.usecases():
        lines.append(f"  subgraph {_node(uc)}[{uc}]")
        for st in graph:
            if st.usecase == uc:
                lines.append(f'    {_node(st.id)}["{st.name}"]')
        lines.append("  end")
    for u, v in reduced_edges(graph):
        lines.append(f"  {_node(u)} --> {_node(v)}")
    for action, css in _MERMAID_CLASS.items():
        members = [_node(s) for s in graph.order if status.get(s) == action]
        if members:
            lines.append(f"  classDef {action.replace('-', '_')} {css}")
            lines.append(f"  class {','.join(members)} {action.replace('-', '_')}")
    return "\n".join(lines) + "\n"


def render_dot(graph: Graph, status: Mapping[str, str]) -> str:
    lines = ["digraph mlopsctl {", "  rankdir=LR;", "  node [shape=box, style=filled];"]
    for uc in graph.usecases():
        lines.append(f'  subgraph "cluster_{uc}" {{')
        lines.append(f'    label="{uc}";')
        for st in graph:
            if st.usecase == uc:
                color = _DOT_COLOR.get(status.get(st.id, ""), "white")
                lines.append(f'    "{st.id}" [label="{st.name}", fillcolor="{color}"];')
        lines.append("  }")
    for u, v in reduced_edges(graph):
        lines.append(f'  "{u}" -> "{v}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def ascii_lines(graph: Graph, status: Mapping[str, str]) -> list[tuple[str, str]]:
    """(style, text): each use case, then its stages in order with what they depend on."""
    ups: dict[str, list[str]] = {sid: [] for sid in graph.order}
    for u, v in reduced_edges(graph):
        ups[v].append(u)
    out: list[tuple[str, str]] = []
    for uc in graph.usecases():
        out.append(("bold", uc))
        stages = [st for st in graph if st.usecase == uc]
        width = max(len(st.name) for st in stages)
        for st in stages:
            deps = ", ".join(
                u.split("/", 1)[1] if u.startswith(uc + "/") else u for u in ups[st.id]
            )
            arrow = f"<- {deps}" if deps else ""
            action = status.get(st.id, "")
            out.append((STYLE.get(action, ""), f"  {st.name.ljust(width)}  {arrow:<30} [{action}]"))
    return out
