"""bench/ uses the runner through its public API (kslim_runner.api) only: no private names, no
internal modules, no sys.path edits. The scripts are parsed, not run (most need Paddle and hours)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from kslim_runner import api

ROOT = Path(__file__).resolve().parents[1]
BENCH = sorted((ROOT / "bench").glob("*.py"))
RUNNER = ROOT / "runner"
#: What bench may import of the runner: the package itself (it sets up zlib before Paddle) and its API.
RUNNER_MODULES = {"kslim_runner", "kslim_runner.api"}


def imports(tree: ast.AST) -> list[tuple[str, list[str], int]]:
    """(module, names imported from it, line) for every import anywhere in the file."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, [alias.name for alias in node.names], node.lineno))
    return found


def problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "path" and ast.unparse(node.value) == "sys":
            found.append(f"{path.name}:{node.lineno}: sys.path (put what it needs on PYTHONPATH instead)")
        if isinstance(node, ast.Attribute) and node.attr == "addsitedir":
            found.append(f"{path.name}:{node.lineno}: site.addsitedir")
    for module, names, line in imports(tree):
        top = module.split(".")[0]
        where = f"{path.name}:{line}: {module}"
        if top == "kslim_operator":
            found.append(f"{where}: the operator runs as a process (python -m kslim_operator)")
        if top == "kslim_runner" and module not in RUNNER_MODULES:
            found.append(f"{where}: an internal runner module; use kslim_runner.api")
        if top.startswith("kslim_"):
            private = [n for n in [*module.split("."), *names] if n.startswith("_")]
            if private:
                found.append(f"{where}: private {', '.join(private)}")
        if module == "kslim_runner.api":
            unknown = [n for n in names if n not in api.__all__]
            if unknown:
                found.append(f"{where}: kslim_runner.api has no {', '.join(unknown)}")
    return found


@pytest.mark.parametrize("path", BENCH, ids=[p.name for p in BENCH])
def test_bench_uses_only_the_public_runner_api(path: Path) -> None:
    assert not problems(path), "\n".join(problems(path))


def test_the_checker_catches_what_it_should(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import sys\nsys.path.insert(0, 'tests')\n"
        "from kslim_runner.measure.latency import compare_latency\n"
        "from kslim_runner.api import _inputs, no_such_name\n"
        "def f():\n    from kslim_operator import names\n"
    )
    text = "\n".join(problems(bad))
    for needle in (
        "sys.path",
        "internal runner module",
        "private _inputs",
        "has no _inputs, no_such_name",
        "operator",
    ):
        assert needle in text, text


def _defines(module: str, name: str) -> bool:
    """Whether the module's source binds `name` at its top level (def, class, assignment, import)."""
    parts = module.split(".")
    path = RUNNER.joinpath(*parts).with_suffix(".py")
    if not path.is_file():
        path = RUNNER.joinpath(*parts, "__init__.py")
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == name:
            return True
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        if isinstance(node, ast.Import | ast.ImportFrom) and any(
            (a.asname or a.name) == name for a in node.names
        ):
            return True
    return False


def test_every_api_name_exists_where_the_api_says() -> None:
    exports = api._EXPORTS
    missing = [f"{name} ({module})" for name, module in exports.items() if not _defines(module, name)]
    assert not missing, missing
    assert all(not name.startswith("_") for name in api.__all__)
    with pytest.raises(AttributeError, match="has no 'nothing'"):
        api.nothing  # noqa: B018
