"""Every import is declared: a static check of ``taskfuse/``, ``scripts/`` and ``tests/`` against pyproject.toml.

An AST walk collects each module's imports (``import``, ``from ... import``, and literal names given to
``importlib.import_module`` and ``pytest.importorskip``) and maps their top-level names to the distributions
pyproject.toml declares, using the top-level names each installed distribution provides (a declared distribution
that is not installed provides its own normalised name). The standard library is ``sys.stdlib_module_names``.

- ``taskfuse/`` and ``scripts/`` may import the runtime ``dependencies``; an optional extra (any extra but
  ``dev``) only inside a function, under ``try`` with an ``except ImportError`` whose message names
  ``pip install taskfuse[EXTRA]``, so that ``import taskfuse`` works without it and the feature says how to get it.
- ``tests/`` may also import the ``dev`` extra.
- Every runtime dependency is imported by the package (nothing is declared for nothing).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")

ROOT = Path(__file__).resolve().parents[1]
DEV = "dev"


@dataclass(frozen=True)
class Imported:
    """One import: its top-level name, where it is, and whether it runs lazily behind an extra's hint."""

    name: str
    where: str
    in_function: bool
    hinted_extras: frozenset[str]


def normalise(name: str) -> str:
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"pyproject.toml: cannot read the requirement {requirement!r}"
    return normalise(match.group(1))


def declared() -> dict[str, set[str]]:
    """Distribution names by group: ``""`` for ``dependencies``, else the extra's name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"": {requirement_name(r) for r in project.get("dependencies", [])}}
    for extra, reqs in project.get("optional-dependencies", {}).items():
        groups[extra] = {requirement_name(r) for r in reqs if requirement_name(r) != "taskfuse"}
    return groups


@functools.cache
def top_level_names() -> dict[str, set[str]]:
    """Top-level import names by normalised distribution name, from what is installed."""
    out: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            out.setdefault(normalise(dist), set()).add(module)
    return out


def provided(dists: set[str], installed: dict[str, set[str]]) -> set[str]:
    names: set[str] = set()
    for dist in dists:
        names |= installed.get(dist, {dist.replace("-", "_")})
    return names


def handler_hints(node: ast.Try, source: str) -> frozenset[str]:
    """Extras named as ``taskfuse[EXTRA]`` in the ``except ImportError`` handlers of ``node``."""
    hints: set[str] = set()
    for handler in node.handlers:
        caught = ast.get_source_segment(source, handler.type) if handler.type is not None else ""
        if caught and ("ImportError" in caught or "ModuleNotFoundError" in caught):
            text = ast.get_source_segment(source, handler) or ""
            hints |= set(re.findall(r"taskfuse\[([A-Za-z0-9_,-]+)\]", text))
    return frozenset(e for group in hints for e in group.split(","))


def literal_import(call: ast.Call) -> str | None:
    """The module named by ``importlib.import_module("x")`` or ``pytest.importorskip("x")``."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name in ("import_module", "importorskip") and call.args and isinstance(call.args[0], ast.Constant):
        value = call.args[0].value
        return value if isinstance(value, str) and not value.startswith(".") else None
    return None


def imports_of(source: str, where: str) -> list[Imported]:
    """The absolute imports in ``source`` with their context (function body, extras hinted by a handler).

    Statements are walked with their context; expressions only when the text calls ``import_module`` or
    ``importorskip``, whose context is then read from the line spans of the enclosing functions and ``try``s."""
    found: list[Imported] = []
    functions: list[tuple[int, int]] = []
    guarded: list[tuple[int, int, frozenset[str]]] = []

    def visit(body: list[ast.AST], in_function: bool, hints: frozenset[str]) -> None:
        for node in body:
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found.extend(Imported(n.split(".")[0], f"{where}:{node.lineno}", in_function, hints) for n in names)
            inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if inner and not in_function:
                functions.append((node.lineno, node.end_lineno or node.lineno))
            for field, value in ast.iter_fields(node):
                if isinstance(value, list) and value and isinstance(value[0], ast.stmt | ast.excepthandler):
                    in_try = isinstance(node, ast.Try) and field == "body"
                    extra = handler_hints(node, source) if in_try else frozenset()
                    if extra:
                        guarded.append((value[0].lineno, value[-1].end_lineno or value[-1].lineno, extra))
                    visit(value, inner, hints | extra)

    tree = ast.parse(source)
    visit(tree.body, False, frozenset())
    if "import_module(" in source or "importorskip(" in source:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and (module := literal_import(node)):
                line = node.lineno
                in_function = any(a <= line <= b for a, b in functions)
                hints = frozenset(e for a, b, extras in guarded if a <= line <= b for e in extras)
                found.append(Imported(module.split(".")[0], f"{where}:{line}", in_function, hints))
    return found


def local_names(folder: Path) -> set[str]:
    """Modules importable from inside ``folder`` by their bare name (test helpers, conftest)."""
    return {p.stem for p in folder.rglob("*.py")} | {p.name for p in folder.rglob("*") if p.is_dir()}


def problems(source: str, where: str, groups: dict[str, set[str]], allow_dev: bool, local: set[str]) -> list[str]:
    """Every import of ``source`` that no declared distribution covers, or that uses an extra eagerly."""
    installed = top_level_names()
    runtime = provided(groups.get("", set()), installed) | {"taskfuse"} | local
    dev = provided(groups.get(DEV, set()), installed) if allow_dev else set()
    extras = {extra: provided(d, installed) for extra, d in groups.items() if extra not in ("", DEV)}
    found = []
    for imp in imports_of(source, where):
        if imp.name in sys.stdlib_module_names or imp.name in runtime or imp.name in dev:
            continue
        owners = sorted(extra for extra, names in extras.items() if imp.name in names)
        if not owners:
            found.append(f"{imp.where}: {imp.name!r} is in no dependency list of pyproject.toml")
        elif not allow_dev and not (imp.in_function and imp.hinted_extras & set(owners)):
            found.append(
                f"{imp.where}: {imp.name!r} comes from the optional extra {owners[0]!r}; import it inside the "
                f"function that needs it, under try/except ImportError naming pip install taskfuse[{owners[0]}]"
            )
    return found


def sources(*folders: str) -> Iterator[tuple[Path, str]]:
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, str(path.relative_to(ROOT))


def test_package_and_scripts_import_only_declared_dependencies() -> None:
    groups = declared()
    found = []
    for path, where in sources("taskfuse", "scripts"):
        local = local_names(ROOT / "scripts") if where.startswith("scripts") else set()
        found += problems(path.read_text(), where, groups, allow_dev=False, local=local)
    assert not found, "\n".join(found)


def test_tests_import_only_declared_dependencies() -> None:
    groups = declared()
    local = local_names(ROOT / "tests")
    found = []
    for path, where in sources("tests"):
        found += problems(path.read_text(), where, groups, allow_dev=True, local=local)
    assert not found, "\n".join(found)


def test_every_runtime_dependency_is_imported_by_the_package() -> None:
    installed = top_level_names()
    used = {imp.name for path, where in sources("taskfuse") for imp in imports_of(path.read_text(), where)}
    unused = [d for d in sorted(declared()[""]) if not provided({d}, installed) & used]
    assert not unused, f"declared in dependencies but never imported by taskfuse/: {unused}"


GROUPS = {"": {"numpy"}, DEV: {"pytest"}, "video": {"av"}}
LAZY = """
def read_video(path):
    try:
        import av
    except ImportError as e:
        raise TaskfuseError("video needs PyAV: pip install taskfuse[video]") from e
"""


@pytest.mark.parametrize(
    ("source", "allow_dev", "expected"),
    [
        ("import numpy\nimport os.path\nfrom taskfuse import models\n", False, []),
        ("import scipy.signal\n", True, ["'scipy' is in no dependency list"]),
        ("import pytest\n", False, ["'pytest' is in no dependency list"]),
        ("import pytest\n", True, []),
        ("import av\n", False, ["optional extra 'video'"]),
        ("def f():\n    import av\n", False, ["optional extra 'video'"]),
        (LAZY, False, []),
        (LAZY.replace("[video]", "[onnx]"), False, ["optional extra 'video'"]),
        ("importlib.import_module('yaml')\n", False, ["'yaml' is in no dependency list"]),
        ("pytest.importorskip('pycocotools.coco')\n", True, ["'pycocotools' is in no dependency list"]),
    ],
)
def test_the_checker_flags_what_it_should(source: str, allow_dev: bool, expected: list[str]) -> None:
    found = problems(source, "x.py", GROUPS, allow_dev=allow_dev, local=set())
    assert len(found) == len(expected) and all(e in f for e, f in zip(expected, found, strict=True)), found
