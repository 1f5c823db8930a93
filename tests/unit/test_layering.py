"""The package's layering, read from the source with `ast` (nothing is imported).

Layers, top to bottom (a module may import its own layer, any layer it lists below, and `base`):

    top          cli, bench, __main__          -> recipe, report, capability, foundation, assets
    recipe       experiments                   -> report, capability, foundation, assets
    report       report                        -> capability, foundation, assets
    capability   strategies, diagnostics,      -> foundation, assets
                 landscape, training, tasks,
                 planning
    foundation   models, data                  -> assets
    assets       assets                        -> (base only)
    base         errors, io, registry, config, the package itself  -> base only; anyone may import it

The report renders results files; it sits above the capabilities so it may read their metadata (the
per-layer metric registry gives panel titles and scales) but never a recipe, and no capability imports it.
`tasks` (what a kind of fine-tuning owns: data, model class, evaluation) is a capability: recipes ask it,
and it builds on models, data and training.evaluate.

Every import counts: module level, function level, `if TYPE_CHECKING:`. Plug-in modules loaded by name
(`importlib.import_module("...")`) are not imports here: registries load their members that way on purpose.

Cycles: module A -> B -> ... -> A over the same import edges is refused even when some edges are
function-level imports (those only defer the cycle to call time; the modules still need each other).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "tunescope"

LAYER_OF_TOP_NAME: dict[str, str] = {
    "cli": "top", "bench": "top", "__main__": "top",
    "experiments": "recipe",
    "report": "report",
    "strategies": "capability", "diagnostics": "capability", "landscape": "capability", "training": "capability",
    "tasks": "capability", "planning": "capability",
    "models": "foundation", "data": "foundation",
    "assets": "assets",
    "errors": "base", "io": "base", "registry": "base", "config": "base", "provenance": "base",
}

# layer -> the other layers it may import (base is always allowed; its own layer too)
MAY_IMPORT: dict[str, frozenset[str]] = {
    "top": frozenset({"recipe", "report", "capability", "foundation", "assets"}),
    "recipe": frozenset({"report", "capability", "foundation", "assets"}),
    "report": frozenset({"capability", "foundation", "assets"}),
    "capability": frozenset({"foundation", "assets"}),
    "foundation": frozenset({"assets"}),
    "assets": frozenset(),
    "base": frozenset(),
}


@dataclass(frozen=True)
class Edge:
    """`source` imports `target` at file:line."""

    source: str
    target: str
    file: str
    line: int

    def where(self) -> str:
        return f"{self.file}:{self.line}"


def discover_modules(src: Path = SRC) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is_package) for every .py file of the package."""
    out = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


def _resolve(name: str, modules: dict) -> str:
    """The deepest known module `name` refers to (a.b.func -> a.b)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def _imported_names(node: ast.AST, package: str) -> Iterator[str]:
    """Dotted names an import statement reaches; `from m import x` yields m.x (x may be a submodule or a name in m;
    `_resolve` maps a name back to m)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:  # relative: strip (level - 1) trailing parts of the importing package
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        for alias in node.names:
            yield f"{module}.{alias.name}"


def import_edges(src: Path = SRC) -> list[Edge]:
    """Every import of a package module by a package module, at any depth of the file's syntax tree."""
    modules = discover_modules(src)
    edges = []
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        rel = str(path.relative_to(src.parent))
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            for imported in _imported_names(node, package):
                if imported.split(".")[0] != PACKAGE:
                    continue
                target = _resolve(imported, modules)
                if target and target != name:
                    edges.append(Edge(name, target, rel, node.lineno))
    return edges


def layer_of(module: str) -> str:
    """The layer of a dotted module name (`tunescope` itself is base)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "base"
    return LAYER_OF_TOP_NAME[parts[1]]


def upward_imports(edges: list[Edge]) -> list[str]:
    """'file:line  source (layer) -> target (layer)' for every import the layer rules refuse."""
    bad = []
    for e in edges:
        src, dst = layer_of(e.source), layer_of(e.target)
        if dst == "base" or dst == src or dst in MAY_IMPORT[src]:
            continue
        bad.append(f"{e.where()}  {e.source} ({src}) -> {e.target} ({dst})")
    return sorted(set(bad))


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def cycle_path(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One concrete cycle inside a strongly connected component: [a, b, ..., a] (shortest back to a, BFS)."""
    members = set(component)
    start = component[0]
    parent: dict[str, str] = {}  # BFS tree rooted at start
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child == start:  # node -> start closes the shortest cycle; walk the tree back to start
                    back = [node]
                    while back[-1] != start:
                        back.append(parent[back[-1]])
                    return [*reversed(back), start]
                if child in members and child not in parent:
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    raise AssertionError(f"{component} is not strongly connected")


def import_cycles(edges: list[Edge]) -> list[str]:
    """'a -> b -> a  (a at file:line, b at file:line)' for every cycle of module imports."""
    graph: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        where.setdefault((e.source, e.target), e.where())
    out = []
    for component in strongly_connected(graph):
        path = cycle_path(component, graph)
        steps = ", ".join(where[(a, b)] for a, b in itertools.pairwise(path))
        out.append(" -> ".join(path) + f"  ({steps})")
    return out


# --- the checks --------------------------------------------------------------------------------------------------

def test_every_top_level_name_has_a_layer():
    top = {name.split(".")[1] for name in discover_modules() if "." in name}
    assert top <= set(LAYER_OF_TOP_NAME), f"no layer for: {sorted(top - set(LAYER_OF_TOP_NAME))}"


def test_the_parser_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / PACKAGE / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / PACKAGE / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from . import a\n")
    (pkg / "a.py").write_text("def f():\n    from tunescope.sub.b import g\n    return g\n")
    (pkg / "b.py").write_text("from .a import f\nimport tunescope\n")
    graph: dict[str, set[str]] = {}
    for e in import_edges(tmp_path):
        graph.setdefault(e.source, set()).add(e.target)
    assert graph == {"tunescope.sub": {"tunescope.sub.a"}, "tunescope.sub.a": {"tunescope.sub.b"},
                     "tunescope.sub.b": {"tunescope.sub.a", "tunescope"}}
    assert strongly_connected(graph) == [["tunescope.sub.a", "tunescope.sub.b"]]
    assert cycle_path(["tunescope.sub.a", "tunescope.sub.b"], graph) == [
        "tunescope.sub.a", "tunescope.sub.b", "tunescope.sub.a"]


def test_the_rules_refuse_exactly_the_upward_edges():
    def refused(source: str, target: str) -> bool:
        return bool(upward_imports([Edge(f"tunescope.{source}", f"tunescope.{target}", "f.py", 1)]))

    for source, target in [("models.load", "strategies.sift.state"), ("landscape.basins", "report.plots"),
                           ("report.html", "experiments.run"), ("experiments.run", "cli.common"),
                           ("config", "models.load"), ("assets.fetch", "data.named")]:
        assert refused(source, target), (source, target)
    for source, target in [("experiments.run", "report.html"), ("report.sections.x", "diagnostics.metrics"),
                           ("strategies.lora", "diagnostics.selection"), ("models.load", "assets"),
                           ("data.named", "models.load"), ("bench.sift", "experiments.finetune"),
                           ("assets.fetch", "io"), ("landscape.basins", "config")]:
        assert not refused(source, target), (source, target)


def test_no_import_goes_upward():
    bad = upward_imports(import_edges())
    print("\n".join(["upward imports:", *bad]) if bad else "upward imports: none")
    assert not bad, f"{len(bad)} import(s) go upward:\n" + "\n".join(bad)


def test_no_import_cycle_between_modules():
    cycles = import_cycles(import_edges())
    print("\n".join(["import cycles:", *cycles]) if cycles else "import cycles: none")
    assert not cycles, f"{len(cycles)} import cycle(s):\n" + "\n".join(cycles)
