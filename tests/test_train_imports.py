"""No import cycle inside the train/ package, function-level imports included.

The graph is read from the source with `ast` (nothing is imported): every `import train.x`,
`from train.x import ...`, `from .x import ...`, `from . import x` and `from .. import x`
anywhere in a module (top level or inside a function) is an edge. A package's `__init__` is a
node of its own (`train`, `train.encoders`); an import naming a package's submodule is an edge
to that submodule only, not to the packages above it.
"""
from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "train"


def module_names(root: pathlib.Path = ROOT, package: str = PACKAGE) -> dict[str, pathlib.Path]:
    """{dotted module name: file} of every module under `root / package`; a package's
    `__init__.py` is named after the package."""
    names = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def from_base(node: ast.ImportFrom, here: str) -> str:
    """The absolute module a `from ... import` reads from; `here` is the package relative imports start at."""
    if not node.level:
        return node.module or ""
    base = here
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base


def imported_modules(name: str, source: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules in `known` that module `name` (whose text is `source`) imports anywhere."""
    here = name if is_package else name.rpartition(".")[0]  # the package relative imports start from
    targets = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = from_base(node, here)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in known else base)
    return {t for t in targets if t in known and t != name}


def packages_imported_from(source: str, name: str, is_package: bool, packages: set[str]) -> set[str]:
    """The packages (of `packages`) whose `__init__` module `name` takes names from: `from P import x`
    runs P's `__init__` first and reads x off it, even when x is a submodule."""
    here = name if is_package else name.rpartition(".")[0]
    found = {from_base(node, here) for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    return {p for p in found if p in packages and p != name}


def import_graph(root: pathlib.Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    names = module_names(root, package)
    return {name: imported_modules(name, path.read_text(), path.name == "__init__.py", set(names))
            for name, path in names.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a path whose last node is its first) per strongly connected component of more
    than one node."""
    return [_cycle_in(graph, component) for component in tangles(graph)]


def tangles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm, iterative):
    every module of one imports, through the others, every other."""
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], [0]

    def strongconnect(start: str) -> None:
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(component)

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return components


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A cycle through the component's first node (by name), staying inside the component."""
    start = min(component)
    parents, frontier = {start: None}, [start]
    while frontier:  # breadth-first: the shortest way back to `start`
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child == start:
                    path = [node]
                    while parents[path[-1]] is not None:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if child in component and child not in parents:
                    parents[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) == []
    two = find_cycles({"x": {"y"}, "y": {"x"}, "p": {"q"}, "q": {"r"}, "r": {"p", "x"}})
    assert sorted(map(tuple, two)) == [("p", "q", "r", "p"), ("x", "y", "x")]


def test_edges_include_function_level_and_relative_imports():
    known = {"train", "train.run", "train.run_dir", "train.records", "train.encoders", "train.encoders.sources",
             "train.encoders.errors", "train.metrics"}
    source = ("from . import metrics\n"
              "from .records import write_json\n"
              "import numpy\n"
              "def helper():\n"
              "    from .run import run\n"
              "    import train.run_dir\n"
              "    from train.encoders import sources, load_encoder\n")
    assert imported_modules("train.report", source, False, known) == {
        "train.metrics", "train.records", "train.run", "train.run_dir", "train.encoders.sources", "train.encoders"}
    inner = "from .. import metrics\nfrom ..records import write_json\nfrom . import errors\n"
    assert imported_modules("train.encoders.baseline", inner, False, known) == {
        "train.metrics", "train.records", "train.encoders.errors"}
    assert imported_modules("train.encoders", "from .sources import load_encoder\n", True, known) == {
        "train.encoders.sources"}
    # A cycle held open by a function-level import is still a cycle.
    graph = {"train.run": {"train.report"},
             "train.report": imported_modules("train.report", source, False, known)}
    assert find_cycles(graph) == [["train.report", "train.run", "train.report"]]


def test_graph_is_read():
    graph = import_graph()
    assert {"train", "train.run", "train.run_config", "train.run_dir", "train.encoders",
            "train.encoders.baseline"} <= set(graph)
    assert "train.run_dir" in graph["train.run"]
    assert "train.run" in graph["train.__main__"]  # a function-level import
    assert "train.metrics" in graph["train.encoders.baseline"]  # from .. import metrics


def test_no_import_cycle_in_train():
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in train/:\n" + "\n".join(
        f"{' -> '.join(cycle)}  (one of the {len(tangle)} modules importing each other: {', '.join(sorted(tangle))})"
        for cycle, tangle in zip(cycles, tangles(graph)))


def test_no_cycle_through_a_package_init():
    """Stricter than the graph above: `from train.encoders import convert` inside a module that
    `train/encoders/__init__.py` imports is a cycle through the package's `__init__`."""
    names = module_names()
    packages = {n for n, path in names.items() if path.name == "__init__.py"}
    graph = import_graph()
    for name, path in names.items():
        graph[name] |= packages_imported_from(path.read_text(), name, path.name == "__init__.py", packages)
    assert not find_cycles(graph), f"import cycles through a package's __init__: {find_cycles(graph)}"
    planted = {"train.encoders": {"train.encoders.sources"},
               "train.encoders.sources": packages_imported_from("from train.encoders import convert\n",
                                                                "train.encoders.sources", False, {"train.encoders"})}
    assert find_cycles(planted) == [["train.encoders", "train.encoders.sources", "train.encoders"]]
