"""No import circle in api/, operator/ and runner/, not even one hidden by a late import.

Each module is parsed (never imported) and its imports of the project's own modules become edges:
module level, under `if TYPE_CHECKING:` and inside functions alike. A circle is a failure whichever
kind of import closes it: an import moved into a function or behind TYPE_CHECKING only hides the
circle from the interpreter. Imports inside functions that close no circle are fine (the runner
imports Paddle-heavy parts lazily so that `kslim validate` runs without Paddle).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "kslim_api": ROOT / "api" / "kslim_api",
    "kslim_operator": ROOT / "operator" / "kslim_operator",
    "kslim_runner": ROOT / "runner" / "kslim_runner",
}
#: Which project packages each may import: the schema is shared, the two sides never meet.
MAY_IMPORT = {
    "kslim_api": {"kslim_api"},
    "kslim_operator": {"kslim_api", "kslim_operator"},
    "kslim_runner": {"kslim_api", "kslim_runner"},
}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    kind: str  # "module", "typing" (under TYPE_CHECKING) or "function"

    def __str__(self) -> str:
        return f"{self.source}:{self.line} -> {self.target} ({self.kind})"


def module_files() -> dict[str, Path]:
    files = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = path
    return files


MODULES = module_files()


def _resolve(name: str) -> str | None:
    """The project module an imported name lives in (a name from a module resolves to the module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        here = module.split(".") if is_package else module.split(".")[:-1]
        anchor = here[: len(here) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    # `from pkg import sub` imports the submodule; `from pkg import name` the package
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def edges_of(module: str, path: Path) -> list[Edge]:
    found: list[Edge] = []

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            child_kind = kind
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                child_kind = "function"
            elif isinstance(child, ast.If) and _is_type_checking(child) and kind == "module":
                child_kind = "typing"
            if isinstance(child, ast.Import | ast.ImportFrom):
                for name in _targets(child, module, path.name == "__init__.py"):
                    target = _resolve(name)
                    if target is not None and target != module:
                        found.append(Edge(module, target, child.lineno, kind))
            visit(child, child_kind)

    visit(ast.parse(path.read_text(), str(path)), "module")
    return found


EDGES = [edge for module, path in MODULES.items() for edge in edges_of(module, path)]


def find_cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One cycle (as its edges) per strongly connected component of more than one module."""
    graph: dict[str, list[Edge]] = {}
    for edge in edges:
        graph.setdefault(edge.source, []).append(edge)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan; the graph is a few hundred modules deep at most
        index[node] = low[node] = len(index)
        stack.append(node)
        for edge in graph.get(node, []):
            if edge.target not in index:
                connect(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_one_cycle(graph, component) for component in components]


def _one_cycle(graph: dict[str, list[Edge]], component: set[str]) -> list[Edge]:
    """A shortest way from the component's first module back to itself, inside the component."""
    start = min(component)
    paths: dict[str, list[Edge]] = {start: []}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for edge in graph.get(node, []):
            if edge.target == start:
                return [*paths[node], edge]
            if edge.target in component and edge.target not in paths:
                paths[edge.target] = [*paths[node], edge]
                queue.append(edge.target)
    raise AssertionError(f"no cycle through {start}")


def _describe(cycles: list[list[Edge]]) -> str:
    return "\n".join("circle:\n  " + "\n  ".join(str(e) for e in cycle) for cycle in cycles)


def test_the_scanner_sees_every_package_and_every_kind_of_import() -> None:
    assert {m.split(".")[0] for m in MODULES} == set(PACKAGES)
    assert {e.kind for e in EDGES} == {"module", "typing", "function"}, "the scanner missed a kind"


def test_no_import_circle_at_module_level() -> None:
    cycles = find_cycles([e for e in EDGES if e.kind == "module"])
    assert not cycles, _describe(cycles)


def test_no_circle_hidden_by_a_function_local_or_type_checking_import() -> None:
    cycles = find_cycles(EDGES)
    assert not cycles, _describe(cycles)


def test_each_side_imports_only_what_it_may() -> None:
    wrong = [e for e in EDGES if e.target.split(".")[0] not in MAY_IMPORT[e.source.split(".")[0]]]
    assert not wrong, "\n".join(map(str, wrong))


def test_find_cycles_finds_a_hidden_circle() -> None:
    edges = [Edge("a", "b", 1, "module"), Edge("b", "c", 1, "module"), Edge("c", "a", 9, "function")]
    (cycle,) = find_cycles([*edges, Edge("c", "d", 2, "module")])
    assert [e.source for e in cycle] == ["a", "b", "c"] and cycle[-1].kind == "function"
    assert not find_cycles(edges[:2])
