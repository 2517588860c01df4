"""Generate the field reference of docs/api.md from the CRD schema (itself generated from the models).

    python -m kslim_api.docgen            rewrite the reference part of docs/api.md
    python -m kslim_api.docgen --check    exit 1 when docs/api.md is out of date

docs/api.md is a hand-written guide with one generated part between the BEGIN/END markers below;
only that part is rewritten.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kslim_api import crdgen, slimconfig
from kslim_api.cel import CEL_KEY
from kslim_api.v1alpha1 import PATTERN_HINTS

BEGIN = "<!-- BEGIN GENERATED REFERENCE (python -m kslim_api.docgen) -->"
END = "<!-- END GENERATED REFERENCE -->"
DOC_PATH = crdgen.REPO_ROOT / "docs" / "api.md"
RULES_INTRO = (
    "Checked by the API server (CEL). `kslim validate` checks the same rules with the same messages,\n"
    "except the immutability of started jobs (it needs the old object) and `spec.output` (local runs may\n"
    "omit it)."
)


@dataclass(frozen=True)
class Row:
    path: str
    type: str
    default: str
    description: str


def _type(node: dict[str, Any]) -> str:
    kind = node.get("type", "object")
    if kind == "array":
        inner = _type(node.get("items", {}))
        extra = " (set)" if node.get("x-kubernetes-list-type") == "set" else ""
        return f"list of {inner}{extra}"
    if kind == "object" and "additionalProperties" in node:
        return f"map of {_type(node['additionalProperties'])}"
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    return str(kind)


def _limits(node: dict[str, Any]) -> str:
    parts: list[str] = []
    if "minimum" in node or "maximum" in node:
        parts.append(f"{node.get('minimum', '')}..{node.get('maximum', '')}")
    if "multipleOf" in node:
        parts.append(f"multiple of {node['multipleOf']}")
    if "maxItems" in node:
        parts.append(f"at most {node['maxItems']} items")
    if "minItems" in node and node["minItems"] > 0:
        parts.append(f"at least {node['minItems']}")
    hint = PATTERN_HINTS.get(node.get("pattern", ""))
    if hint:
        parts.append(hint)
    return "; ".join(parts)


def _default(node: dict[str, Any]) -> str:
    if "default" not in node:
        return ""
    value = node["default"]
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, list):
        return "`[" + ", ".join(str(v) for v in value) + "]`"
    return f"`{value}`"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def rows(node: dict[str, Any], path: str, required: bool = False) -> Iterator[Row]:
    desc = node.get("description", "")
    limits = _limits(node)
    if limits:
        desc = f"{desc} ({limits})" if desc else limits
    if required:
        desc = f"**Required.** {desc}"
    yield Row(path, _type(node), _default(node), desc)
    needed = set(node.get("required", []))
    for name, child in node.get("properties", {}).items():
        yield from rows(child, f"{path}.{name}", name in needed)
    items = node.get("items")
    if isinstance(items, dict) and "properties" in items:
        for name, child in items["properties"].items():
            yield from rows(child, f"{path}[].{name}", name in set(items.get("required", [])))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and "properties" in extra:
        for name, child in extra["properties"].items():
            yield from rows(child, f"{path}.*.{name}", name in set(extra.get("required", [])))


def rules(node: dict[str, Any], path: str) -> Iterator[tuple[str, str]]:
    """(field, message) of every CEL rule; the per-field immutability rules collapse into one row."""
    transition = [r for r in node.get(CEL_KEY, []) if "oldSelf" in r["rule"]]
    if transition:
        fields = ", ".join(f"`{r['fieldPath'].lstrip('.')}`" for r in transition)
        yield (
            "spec",
            f"once status.startTime is set, none of {fields} can change (only spec.runPolicy.suspend can)",
        )
    for rule in node.get(CEL_KEY, []):
        if rule in transition or rule["message"] in PATTERN_HINTS.values():
            continue  # pattern twins: their wording is in the field's row already
        where = path + rule.get("fieldPath", "") if path else rule.get("fieldPath", "").lstrip(".")
        yield where or "(object)", rule["message"]
    for name, child in node.get("properties", {}).items():
        yield from rules(child, f"{path}.{name}" if path else name)
    items = node.get("items")
    if isinstance(items, dict):
        yield from rules(items, f"{path}[]")


def _table(schema: dict[str, Any], root: str) -> list[str]:
    lines = ["| Field | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for row in rows(schema, root):
        lines.append(f"| `{row.path}` | {row.type} | {row.default} | {_escape(row.description)} |")
    return lines


def reference() -> str:
    schema = crdgen.openapi_schema()
    spec, status = schema["properties"]["spec"], schema["properties"]["status"]
    out = ["## Reference: spec", "", *_table(spec, "spec"), "", "## Reference: status", ""]
    out += _table(status, "status")
    out += ["", "## Validation rules", "", RULES_INTRO, "", "| Field | Rule |", "| --- | --- |"]
    for where, message in rules(schema, ""):
        out.append(f"| `{where}` | {_escape(message)} |")
    out += ["", *slim_reference()]
    return "\n".join(out) + "\n"


def slim_reference() -> list[str]:
    """The slimConfig key table and every note kslim may print, from kslim_api.slimconfig."""
    out = ["## Reference: slimConfig keys", "", "| PaddleDetection slim key | kslim spec |", "| --- | --- |"]
    out += [f"| `{_escape(key)}` | {_escape(field)} |" for key, field in slimconfig.KEY_MAP]
    out += ["", "## Reference: slimConfig notes", ""]
    out += ["Printed by `kslim validate` (`note: ...`); `<...>` is filled in.", ""]
    out += [f"- {_placeholders(text)}" for text in slimconfig.note_texts()]
    return out


def _placeholders(text: str) -> str:
    """ "{key}" / "{value!r}" -> "<key>" / "<value>"."""
    return re.sub(r"\{(\w+)[^}]*\}", r"<\1>", text)


def render(current: str) -> str:
    """`current` with its generated part replaced (appended when the markers are missing)."""
    generated = f"{BEGIN}\n\n{reference()}\n{END}"
    if BEGIN in current and END in current:
        head, _, rest = current.partition(BEGIN)
        _, _, tail = rest.partition(END)
        return head + generated + tail
    return current.rstrip("\n") + ("\n\n" if current.strip() else "") + generated + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kslim_api.docgen", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOC_PATH, help="the Markdown file (default: docs/api.md)")
    parser.add_argument("--check", action="store_true", help="fail when the file is out of date")
    args = parser.parse_args(argv)
    current = args.out.read_text() if args.out.exists() else ""
    text = render(current)
    if args.check:
        if text != current:
            print(f"{args.out} is out of date: run `python -m kslim_api.docgen`", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
