"""The package's import structure: no import cycles between modules, and no module importing a higher layer.

Edges are every ``import`` statement inside ``taskfuse/`` (module level or inside functions): ``from a.b import c``
counts as an edge to ``a.b.c`` when that is a module, else to ``a.b``. Layers, lowest first; a module may import
its own layer and the ones below.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "taskfuse"

LAYERS: list[tuple[str, ...]] = [
    ("taskfuse.errors", "taskfuse.version", "taskfuse.registry", "taskfuse.device", "taskfuse.workers"),
    ("taskfuse.nn", "taskfuse.data"),
    ("taskfuse.metrics",),
    ("taskfuse.losses",),
    ("taskfuse.tasks",),
    ("taskfuse.models",),
    ("taskfuse.inference", "taskfuse.export", "taskfuse.train"),
    ("taskfuse.evaluation",),
    ("taskfuse.benchmark",),
    ("taskfuse.cli", "taskfuse"),
]
"""``taskfuse`` itself (the package ``__init__``) sits on top: it only re-exports, lazily."""


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the taskfuse modules it imports."""
    mods = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module for a in node.names
                ]
            else:
                continue
            graph[name] |= {t for t in targets if t in mods and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(modules()):
        if v not in index:
            visit(v)
    return found


def layer(module: str) -> int:
    best, rank = "", -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best):
                best, rank = p, i
    assert rank >= 0, f"{module} is in no layer; add it to LAYERS"
    return rank


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a, bs in graph.items() for b in bs if layer(b) > layer(a))


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_no_module_imports_a_higher_layer() -> None:
    assert upward_imports(import_graph()) == []


def test_inference_and_training_stand_apart() -> None:
    """Fusing images and training networks both stand on the model layer; neither reaches into the other."""
    apart = ("taskfuse.inference", "taskfuse.train")
    crossing = [
        (a, b)
        for a, bs in import_graph().items()
        for b in bs
        if any(a.startswith(x) for x in apart) and any(b.startswith(y) for y in apart if not a.startswith(y))
    ]
    assert crossing == []
