"""The package's layers, read from its imports: nothing imports upward, and no modules form a cycle.

Every import counts: at module level, inside a function (a lazy import is still a dependency) and
under ``if TYPE_CHECKING:`` (a type-only cycle is still two modules that cannot be understood
apart). Each top-level module or package of ``mlops_cli`` is declared in :data:`LAYERS`, so a new
one has to be placed deliberately; a module may import its own layer or any layer below.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlops_cli

pytestmark = pytest.mark.unit

PACKAGE_ROOT = Path(mlops_cli.__file__).resolve().parent

# Bottom to top. A module may import from its own layer and the ones before it, never after.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "foundation",
        frozenset(
            {"__init__", "errors", "config", "progress", "workspace", "resources", "validation"}
        ),
    ),
    (
        "building blocks",
        frozenset(
            {"spec", "packages", "stores", "registry", "render", "triton", "aws", "placement"}
        ),
    ),
    ("managed servers", frozenset({"local", "mme"})),
    ("use cases", frozenset({"deploy", "perf", "router", "tune"})),
    ("library api", frozenset({"api"})),
    ("command line", frozenset({"cli", "__main__"})),
)
LAYER_OF = {part: index for index, (_, parts) in enumerate(LAYERS) for part in parts}


def module_files() -> dict[str, Path]:
    """``mlops_cli.x.y`` -> its file, for every module of the package (a package: __init__.py)."""
    found = {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        parts = ["mlops_cli", *path.relative_to(PACKAGE_ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported_names(source: str, *, module: str, is_package: bool) -> Iterator[str]:
    """Every name an import statement anywhere in ``source`` asks for (``from a import b`` gives
    ``a.b``; the caller decides whether that is a module or a name in ``a``)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of mlops_cli it imports."""
    files = module_files()

    def owner(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        names = imported_names(
            path.read_text(encoding="utf-8"), module=module, is_package=path.name == "__init__.py"
        )
        targets = {owner(name) for name in names if name.split(".")[0] == "mlops_cli"}
        graph[module] = {target for target in targets if target is not None and target != module}
    return graph


def layer_part(module: str) -> str:
    """The top-level part a module belongs to: ``mlops_cli.deploy.base`` -> ``deploy``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = lowlink[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                lowlink[node] = min(lowlink[node], lowlink[target])
            elif target in on_stack:
                lowlink[node] = min(lowlink[node], index[target])
        if lowlink[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def one_loop(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    """A shortest import loop through the first of ``members`` (a cycle found above), to show."""
    start, inside = members[0], set(members)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & inside):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    return members


def test_the_import_reader_sees_lazy_and_type_only_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "if TYPE_CHECKING:\n"
        "    from mlops_cli.registry.base import Registry\n"
        "def late():\n"
        "    import mlops_cli.deploy.engine as engine\n"
        "    from ..errors import UsageError\n"
    )
    names = set(imported_names(source, module="mlops_cli.perf.runner", is_package=False))
    assert {
        "mlops_cli.perf.sibling",
        "mlops_cli.registry.base.Registry",
        "mlops_cli.deploy.engine",
        "mlops_cli.errors.UsageError",
    } <= names


def test_the_cycle_finder_reports_each_cycle_once_with_a_loop_to_show() -> None:
    graph = {"a": {"b", "d"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": set()}
    assert find_cycles(graph) == [["a", "b", "c", "d"]]
    assert one_loop(graph, ["a", "b", "c", "d"]) == ["a", "d", "a"]


def test_every_top_level_module_has_a_declared_layer() -> None:
    undeclared = sorted({layer_part(m) for m in module_files()} - set(LAYER_OF))
    assert not undeclared, (
        f"declare a layer for {undeclared} in LAYERS (tests/unit/test_layers.py); the top level "
        "holds only the foundation modules, everything else belongs to a package"
    )


def test_no_module_imports_from_a_higher_layer() -> None:
    upward = sorted(
        f"{module} ({LAYERS[LAYER_OF[layer_part(module)]][0]}) imports {target} "
        f"({LAYERS[LAYER_OF[layer_part(target)]][0]})"
        for module, targets in import_graph().items()
        for target in targets
        if layer_part(module) in LAYER_OF
        and layer_part(target) in LAYER_OF
        and LAYER_OF[layer_part(target)] > LAYER_OF[layer_part(module)]
    )
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_no_import_cycle_between_modules() -> None:
    graph = import_graph()
    loops = [" -> ".join(one_loop(graph, cycle)) for cycle in find_cycles(graph)]
    assert not loops, "modules that import each other (directly or around a loop):\n" + "\n".join(
        loops
    )
