#!/usr/bin/env python3
"""Render docs/spec.md, the reference of every key, from the JSON Schemas.

The schemas (mlopsctl/schemas/usecase.schema.json and project.schema.json) are the source of
truth; this script only presents their descriptions, types, allowed values, defaults and
bounds, so the reference never drifts from what ``mlopsctl validate`` enforces.

    python scripts/gen_spec_docs.py            # rewrite docs/spec.md
    python scripts/gen_spec_docs.py --check    # exit 1 if docs/spec.md is out of date

Standard library only; the output is deterministic (schema order, no timestamps).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "mlopsctl" / "schemas"
OUTPUT = ROOT / "docs" / "spec.md"

Schema = dict[str, Any]

#: $defs of the use-case schema documented once, in "Shared types", and linked from each use.
SHARED = ("source", "metricBound")


@dataclass(frozen=True)
class Row:
    path: str
    type: str
    required: bool
    default: str
    constraints: str
    description: str


class Renderer:
    """Walks one schema document, resolving ``$ref`` within it and into its sibling schema."""

    def __init__(self, docs: dict[str, Schema]) -> None:
        self.docs = docs  # file name -> schema

    # --- references ---------------------------------------------------------------------------

    def resolve(self, schema: Schema, doc: str) -> tuple[Schema, str, str | None]:
        """Follow ``$ref`` chains: (target merged with local keywords, its document, def name)."""
        def_name = None
        while "$ref" in schema:
            target_doc, _, pointer = schema["$ref"].partition("#")
            doc = target_doc or doc
            node: Any = self.docs[doc]
            for part in pointer.strip("/").split("/"):
                node = node[part]
            def_name = pointer.rsplit("/", 1)[-1]
            local = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**node, **local}  # keywords beside $ref (description) win
        return schema, doc, def_name

    # --- one cell at a time -------------------------------------------------------------------

    def type_of(self, schema: Schema, doc: str) -> str:
        schema, doc, def_name = self.resolve(schema, doc)
        if def_name in SHARED:
            return f"[{def_name}](#{anchor(def_name)})"
        if "const" in schema:
            return f"`{json.dumps(schema['const'])}`"
        if "anyOf" in schema:
            return " or ".join(self.type_of(alt, doc) for alt in schema["anyOf"])
        kind = schema.get("type")
        items = schema.get("items")
        if isinstance(kind, list):
            return " or ".join(
                f"array of {self.type_of(items, doc)}" if k == "array" and items else k
                for k in kind
            )
        if kind == "array":
            return f"array of {self.type_of(items, doc)}" if items else "array"
        if kind == "object" and "properties" not in schema:
            values = schema.get("additionalProperties")
            if isinstance(values, dict) and ("type" in values or "$ref" in values):
                return f"map of {self.type_of(values, doc)}"
            return "map"
        return str(kind) if kind else "any"

    def constraints_of(self, schema: Schema, doc: str) -> str:
        schema, doc, def_name = self.resolve(schema, doc)
        if def_name in SHARED:
            return ""
        parts: list[str] = []
        if "enum" in schema:
            parts.append("one of " + ", ".join(code(v) for v in schema["enum"]))
        for key, text in (
            ("minimum", ">= {}"),
            ("exclusiveMinimum", "> {}"),
            ("maximum", "<= {}"),
            ("exclusiveMaximum", "< {}"),
            ("minLength", "at least {} characters"),
            ("minItems", "at least {} items"),
            ("minProperties", "at least {} keys"),
        ):
            if key in schema:
                is_one = key.startswith("min") and key != "minimum" and schema[key] == 1
                parts.append(size_one(key) if is_one else text.format(schema[key]))
        if "const" in schema.get("not", {}):
            parts.append(f"not {code(schema['not']['const'])}")
        if "pattern" in schema:
            parts.append(f"matches {code(schema['pattern'])}")
        if schema.get("uniqueItems"):
            parts.append("no duplicates")
        if "propertyNames" in schema:
            names, _, _ = self.resolve(schema["propertyNames"], doc)
            if "enum" in names:
                parts.append("keys: " + ", ".join(code(v) for v in names["enum"]))
            elif "pattern" in names:
                parts.append(f"keys match {code(names['pattern'])}")
        if "examples" in schema:
            parts.append("e.g. " + ", ".join(code(v) for v in schema["examples"]))
        for alt in schema.get("anyOf", []):
            inner = self.constraints_of(alt, doc)
            if inner:
                parts.append(f"as {self.type_of(alt, doc)}: {inner}")
        items = schema.get("items")
        if "array" in kinds(schema) and isinstance(items, dict):
            inner = self.constraints_of(items, doc)
            if inner:
                parts.append(f"items: {inner}")
        values = schema.get("additionalProperties")
        if schema.get("type") == "object" and isinstance(values, dict):
            inner = self.constraints_of(values, doc)
            if inner:
                parts.append(f"values: {inner}")
        return "; ".join(dict.fromkeys(parts))  # without repeats, in order

    # --- walking ------------------------------------------------------------------------------

    def rows(self, schema: Schema, doc: str, path: str, required: bool) -> Iterator[Row]:
        """The row of *path* itself, then the rows of everything nested below it."""
        resolved, rdoc, def_name = self.resolve(schema, doc)
        yield Row(
            path=path,
            type=self.type_of(schema, doc),
            required=required,
            default=code(resolved["default"]) if "default" in resolved else "",
            constraints=self.constraints_of(schema, doc),
            description=resolved.get("description", ""),
        )
        if def_name in SHARED:
            return
        yield from self.children(resolved, rdoc, path)

    def children(self, schema: Schema, doc: str, path: str) -> Iterator[Row]:
        if "properties" in schema:
            needed = set(schema.get("required", ()))
            for key, sub in schema["properties"].items():
                yield from self.rows(sub, doc, f"{path}.{key}" if path else key, key in needed)
            return
        values = schema.get("additionalProperties")
        if schema.get("type") == "object" and isinstance(values, dict):
            target, tdoc, def_name = self.resolve(values, doc)
            if def_name not in SHARED and ("properties" in target or "items" in target):
                names, _, _ = self.resolve(schema.get("propertyNames", {}), doc)
                placeholder = f"<{names.get('title', 'key')}>"
                yield from self.children(target, tdoc, f"{path}.{placeholder}")
            return
        items = schema.get("items")
        if schema.get("type") == "array" and isinstance(items, dict):
            target, tdoc, _ = self.resolve(items, doc)
            if "properties" in target:
                yield from self.children(target, tdoc, f"{path}[]")

    def rules(self, schema: Schema, doc: str, path: str) -> Iterator[tuple[str, str]]:
        """(path, description) of every conditional rule (``allOf`` item) at or below *path*."""
        schema, doc, def_name = self.resolve(schema, doc)
        if def_name in SHARED and path:  # listed once, under "Shared types"
            return
        for rule in schema.get("allOf", []):
            if "description" in rule:
                yield path, rule["description"]
        subs: list[tuple[str, Schema]] = [
            (f"{path}.{key}" if path else key, sub)
            for key, sub in schema.get("properties", {}).items()
        ]
        if isinstance(schema.get("additionalProperties"), dict):
            subs.append((f"{path}.<key>", schema["additionalProperties"]))
        if isinstance(schema.get("items"), dict):
            subs.append((f"{path}[]", schema["items"]))
        for sub_path, sub in subs:
            yield from self.rules(sub, doc, sub_path)


# --- markdown ---------------------------------------------------------------------------------


def kinds(schema: Schema) -> list[str]:
    """The JSON types a schema names (``type`` may be one name or a list)."""
    kind = schema.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def size_one(keyword: str) -> str:
    """Wording for a size keyword whose value is 1 (the common case)."""
    return {"minProperties": "at least one key"}.get(keyword, "non-empty")


def code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return f"`{text}`"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def anchor(name: str) -> str:
    return f"type-{name.lower()}"


def table(rows: list[Row]) -> list[str]:
    out = [
        "| Key | Type | Required | Default | Allowed values and bounds | Description |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        cells = (
            f"`{row.path}`",
            row.type,
            "yes" if row.required else "",
            row.default,
            row.constraints,
            row.description,
        )
        out.append("| " + " | ".join(cell(c) for c in cells) + " |")
    return out


def rule_list(rules: list[tuple[str, str]]) -> list[str]:
    if not rules:
        return []
    out = ["", "Rules:", ""]
    for path, text in rules:
        out.append(f"- `{path}`: {text}" if path else f"- {text}")
    return out


def section(
    renderer: Renderer, heading: str, schema: Schema, doc: str, path: str, required: bool
) -> list[str]:
    out = ["", heading, ""]
    out += table(list(renderer.rows(schema, doc, path, required)))
    out += rule_list(list(renderer.rules(schema, doc, path)))
    return out


def document_part(renderer: Renderer, doc: str, title: str, intro: str) -> list[str]:
    schema = renderer.docs[doc]
    needed = set(schema.get("required", ()))
    out = ["", f"## {title}", "", intro, "", schema["description"]]
    for key, sub in schema["properties"].items():
        out += section(renderer, f"### `{key}`", sub, doc, key, key in needed)
    top_rules = [rule["description"] for rule in schema.get("allOf", []) if "description" in rule]
    if top_rules:
        out += ["", "### Rules across sections", ""]
        out += [f"- {text}" for text in top_rules]
    return out


def render(schema_dir: Path = SCHEMAS) -> str:
    """The full text of docs/spec.md for the schemas in *schema_dir*."""
    docs = {
        name: json.loads((schema_dir / name).read_text(encoding="utf-8"))
        for name in ("usecase.schema.json", "project.schema.json")
    }
    renderer = Renderer(docs)
    usecase = docs["usecase.schema.json"]
    lines = [
        "<!-- GENERATED by scripts/gen_spec_docs.py from mlopsctl/schemas/*.schema.json; "
        "do not edit by hand. -->",
        "",
        "# Spec reference",
        "",
        "Every key of the two files you write: a use case (`usecases/*.yaml`, "
        "`kind: UseCase`) and the project file (`mlopsctl.yaml`, `kind: Project`). Paths are "
        "written with dots; `<name>` stands for a key you choose, `[]` for each item of a list. "
        "Unknown keys are errors. Editors that speak JSON Schema complete and check these "
        "files when the first line is",
        "",
        "```yaml",
        f"# yaml-language-server: $schema={usecase['$id']}",
        "```",
    ]
    lines += document_part(
        renderer,
        "usecase.schema.json",
        "UseCase",
        f"Schema: [`schemas/usecase.schema.json`]({usecase['$id']}).",
    )
    project = docs["project.schema.json"]
    lines += document_part(
        renderer,
        "project.schema.json",
        "Project",
        f"Schema: [`schemas/project.schema.json`]({project['$id']}).",
    )
    lines += ["", "## Shared types", "", "Types used in several places above."]
    for name in SHARED:
        schema = usecase["$defs"][name]
        lines += [
            "",
            f'<a id="{anchor(name)}"></a>',
            "",
            f"### {name}",
            "",
            schema["description"],
            "",
        ]
        lines += table(list(renderer.children(schema, "usecase.schema.json", "")))
        lines += rule_list(list(renderer.rules(schema, "usecase.schema.json", "")))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/spec.md is stale")
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run scripts/gen_spec_docs.py", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
