"""The engine's architecture stays easy to see: no import cycle in dfkd_core (function-level
imports included), one epoch loop of Algorithm 1, no private names imported across
sub-packages, and every module named in the package's map."""
from __future__ import annotations

import ast

from conftest import REPO

PACKAGE = REPO / "dfkd_core"


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def runtime_imports(name: str, tree: ast.Module, known: set[str], is_package: bool) -> list[tuple[str, str]]:
    """(imported module, imported name) of every import outside `if TYPE_CHECKING:` blocks."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            package = name.split(".") if is_package else name.split(".")[:-1]
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append((sub, "") if sub in known else (target, alias.name))
        elif isinstance(node, ast.Import):
            out += [(alias.name, "") for alias in node.names]
    return [(m, n) for m, n in out if m in known and m != name]


def import_graph() -> tuple[dict[str, set[str]], dict[str, list[tuple[str, str]]]]:
    trees = modules()
    known = set(trees)
    packages = {n for n in known if (PACKAGE.parent / n.replace(".", "/") / "__init__.py").exists()}
    imports = {n: runtime_imports(n, t, known, n in packages) for n, t in trees.items()}
    return {n: {m for m, _ in imps} for n, imps in imports.items()}, imports


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_dfkd_core_has_no_import_cycle_even_through_function_level_imports():
    graph, _ = import_graph()
    assert cycles(graph) == []
    # the check can fail: a planted cycle is found
    planted = {**graph, "dfkd_core.errors": graph["dfkd_core.errors"] | {"dfkd_core.engine.loop"}}
    assert cycles(planted)


def test_no_private_name_is_imported_across_sub_packages():
    _, imports = import_graph()

    def area(module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 2 or (PACKAGE / parts[-1] / "__init__.py").exists() else ""

    crossing = [f"{importer} imports {name} from {module}" for importer, imps in imports.items()
                for module, name in imps if name.startswith("_") and not name.startswith("__")
                and area(importer) != area(module)]
    assert crossing == []


def test_one_epoch_loop_trains_every_distillation():
    """Only engine/loop.py runs stacks epoch by epoch; the plain loop is the benchmark's baseline."""
    runners = []
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "run_epoch":
                runners.append(name)
    assert sorted(set(runners)) == ["dfkd_core.engine.loop"]


def test_the_package_map_names_every_module():
    doc = ast.get_docstring(modules()["dfkd_core"])
    missing = []
    for name in modules():
        short = name.split(".")[-1]
        if name == "dfkd_core" or short.startswith("__"):
            continue
        if short not in doc:
            missing.append(name)
    assert missing == []
