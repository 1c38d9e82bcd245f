"""The package's architecture, checked: import contracts, no import cycles, no hidden imports.

- The import-linter contracts of pyproject.toml ([tool.importlinter]) hold.
- No import cycle anywhere in dronedispatch/, counting imports under ``if TYPE_CHECKING:`` and inside
  functions, and counting the package ``__init__`` that Python runs before a module imported from
  outside its package.
- No import statement inside a function (nor ``importlib.import_module`` / ``__import__``) except the
  few in :data:`ALLOWED_FUNCTION_IMPORTS`, each with its reason.

:data:`PENDING_FUNCTION_IMPORTS` and :data:`PENDING_CYCLES` name what is still to be moved in files
being reworked; an entry that is gone fails the test until it is removed from the list, and nothing
new may join them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dronedispatch"

#: (file relative to the repository, imported module) -> why the import waits for the function.
ALLOWED_FUNCTION_IMPORTS: dict[tuple[str, str], str] = {
    ("dronedispatch/cli.py", "dronedispatch.service"): "`serve` alone loads the service (FastAPI, SQLAlchemy, aiortc)",
    ("dronedispatch/cli.py", "dronedispatch.demo"): "`demo` alone loads the whole system",
    ("dronedispatch/cli.py", "dronedispatch.store.users"): "`users add` alone loads the database layer",
    ("dronedispatch/cli.py", "dronedispatch.scenario.cli"): "`scenario run` alone loads the scenario harness",
    ("dronedispatch/cli.py", "dronedispatch.sim.runner"): "`sitl` alone loads the simulator",
    ("dronedispatch/cli.py", "dronedispatch.sim.cctv_site"):
        "`sitl --cameras` alone loads the simulated CCTV (PyAV, OpenCV, the ONVIF devices' aiohttp)",
    ("dronedispatch/cli.py", "dronedispatch.seed_history"):
        "`seed-history` alone loads the database layer, shapely and rich",
    ("dronedispatch/cli.py", "dronedispatch.security_cli"):
        "`audit verify` and `ingest-keys` alone load the database layer",
    ("dronedispatch/scenario/cli.py", "dronedispatch.scenario.report"):
        "the report needs matplotlib, loaded only when a report is written, not by the API that lists runs",
}

#: Function-level imports still to move to the top of their module (file, module) -> what to do.
PENDING_FUNCTION_IMPORTS: dict[tuple[str, str], str] = {}

#: Import cycles still to break, by their modules (none: keep it so).
PENDING_CYCLES: list[list[str]] = []


# -- 1. the import-linter contracts -------------------------------------------------------------------


def test_import_contracts_hold() -> None:
    out = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-logo", "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert " 0 broken" in out.stdout and "BROKEN" not in out.stdout


# -- 2. no import cycle -------------------------------------------------------------------------------


def import_edges(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    """Module -> modules it imports, plus the implicit import of each package ``__init__`` that
    Python runs first when a module is imported from outside that package (importing ``a.b.c``
    from ``x`` runs ``a.b`` first; from inside ``a.b`` it is already running)."""
    edges: dict[str, set[str]] = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    for importer, imported in [(a, b) for a, bs in edges.items() for b in bs]:
        parts = imported.split(".")
        for i in range(2, len(parts)):
            package = ".".join(parts[:i])
            if importer != package and not importer.startswith(package + "."):
                edges[importer].add(package)
    return edges


def cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def describe(graph: grimp.ImportGraph, edges: Mapping[str, set[str]], component: list[str]) -> str:
    members = set(component)
    lines = []
    for a in component:
        for b in sorted(edges[a] & members):
            if b in graph.find_modules_directly_imported_by(a):
                where = ", ".join(f"l.{d['line_number']}" for d in graph.get_import_details(importer=a, imported=b))
            else:
                where = "its package __init__ runs first"
            lines.append(f"    {a} -> {b} ({where})")
    return "\n".join(lines)


def test_cycle_finder_sees_direct_and_package_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    graph = grimp.ImportGraph()
    for m in ("p", "p.pkg", "p.pkg.inner", "p.outer"):
        graph.add_module(m)
    graph.add_import(importer="p.pkg", imported="p.pkg.inner")  # the package re-exports inner
    graph.add_import(importer="p.pkg.inner", imported="p.outer")
    graph.add_import(importer="p.outer", imported="p.pkg.inner")  # runs p.pkg first: a cycle
    edges = import_edges(graph)
    assert "p.pkg" in edges["p.outer"] and "p.pkg" not in edges["p.pkg.inner"]
    assert cycles(edges) == [["p.outer", "p.pkg", "p.pkg.inner"]]
    assert cycles({m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}) == [
        ["p.outer", "p.pkg.inner"]]


def test_no_import_cycles() -> None:
    # grimp reads every import statement: module level, under TYPE_CHECKING and inside functions.
    graph = grimp.build_graph("dronedispatch", cache_dir=None)
    edges = import_edges(graph)
    found = cycles(edges)
    new = [c for c in found if c not in PENDING_CYCLES]
    report = "\n".join(f"cycle {i + 1}: {' / '.join(c)}\n{describe(graph, edges, c)}" for i, c in enumerate(new))
    assert not new, f"import cycles in dronedispatch/:\n{report}"
    gone = [c for c in PENDING_CYCLES if c not in found]
    assert not gone, f"cycles broken since (drop them from PENDING_CYCLES): {gone}"


# -- 3. no import inside a function -------------------------------------------------------------------


def function_imports(source: str) -> list[tuple[int, str]]:
    """(line, imported module) of every import made inside a function or lambda of ``source``:
    ``import``/``from … import`` statements and ``importlib.import_module``/``__import__`` calls
    (a relative ``from`` import keeps its dots)."""
    found: list[tuple[int, str]] = []
    tree = ast.parse(source)
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import):
                found.extend((node.lineno, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                found.append((node.lineno, "." * node.level + (node.module or "")))
            elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
                arg = node.args[0] if node.args else None
                found.append((node.lineno, arg.value if isinstance(arg, ast.Constant) else "<dynamic>"))
    return sorted(set(found))


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def test_function_import_finder() -> None:
    source = (
        "import os\n"
        "def f():\n    import json\n    from . import sibling\n    return json\n"
        "async def g():\n    from a.b import c\n"
        "class K:\n    def m(self):\n        importlib.import_module('x.y')\n"
        "h = lambda: __import__('z')\n"
    )
    assert function_imports(source) == [(3, "json"), (4, "."), (7, "a.b"), (10, "x.y"), (11, "z")]


def test_no_imports_inside_functions() -> None:
    found = {
        (str(path.relative_to(ROOT)), module): line
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, module in function_imports(path.read_text(encoding="utf-8"))
    }
    known = ALLOWED_FUNCTION_IMPORTS | PENDING_FUNCTION_IMPORTS
    hidden = sorted(f"{f}:{line}: {m}" for (f, m), line in found.items() if (f, m) not in known)
    assert not hidden, "imports inside functions (move them to the top of the module):\n" + "\n".join(hidden)
    stale = sorted(f"{f}: {m}" for f, m in known if (f, m) not in found)
    assert not stale, "listed function-level imports that are gone (drop them from their list):\n" + "\n".join(stale)
