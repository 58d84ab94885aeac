"""The engine's architecture stays easy to see: no import cycle in dfkd_core (function-level
imports included), one epoch loop of Algorithm 1, no private names imported across
sub-packages, every module named in the package's map, and one implementation of each update
(the fused stack names no part; one RMSprop, one Adam)."""
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

    def with_packages(module: str) -> set[str]:  # importing a.b.c runs a.b's __init__ first
        parts = module.split(".")
        return {".".join(parts[:i]) for i in range(2, len(parts) + 1)} & known

    # a module's own ancestor packages are initialized before it: no edge to them
    graph = {n: {m for m in set().union(*[with_packages(m) for m, _ in imps]) if not n.startswith(m + ".")} - {n}
             for n, imps in imports.items()}
    return graph, imports


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
    """Only engine/loop.py runs stacks epoch by epoch; the plain loop is the benchmark's baseline.
    The playground steps its one-member stacks one engine epoch per click or frame (issue 19: it
    trains on the engine's step): it calls run_epoch once, with no epoch loop of its own."""
    runners = []
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "run_epoch":
                runners.append(name)
    assert sorted(set(runners)) == ["dfkd_core.engine.loop", "dfkd_core.experiments.playground"]
    playground = modules()["dfkd_core.experiments.playground"]
    calls = [n for n in ast.walk(playground) if isinstance(n, ast.Call) and getattr(n.func, "attr", None) == "run_epoch"]
    loops = [n for n in ast.walk(playground) if isinstance(n, (ast.For, ast.While))
             and any(c in ast.walk(n) for c in calls)]
    assert len(calls) == 1 and loops == []  # one epoch per lane step, never a loop over epochs


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


# ------------------------------------------------------------------ one implementation of each update (issue 19)
def string_constants(tree: ast.Module) -> set[str]:
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_the_fused_stack_asks_its_groups_parts_and_never_names_one():
    """FusedMLPStack holds no sampler's logic: what a group does is its part's (engine.fused_parts),
    so no module of the engine but the parts' own names a fused part (STYLE.md 14)."""
    from dfkd_core.engine.fused_parts import FUSED_PARTS

    names = set(FUSED_PARTS.names())
    assert {"prior_draw", "unit_cube_design", "input_descent", "generator_net"} <= names
    trees = modules()
    naming = sorted(module for module, tree in trees.items() if module.startswith("dfkd_core.engine.")
                    and module != "dfkd_core.engine.fused_parts" and string_constants(tree) & names)
    assert naming == []


def test_each_optimizer_update_is_written_once():
    """RMSprop, Adam and the points' fresh optimizer live in models/updates.py alone: no other module
    divides a step by a running root (addcdiv), moves a running average (lerp_) or steps a list of
    tensors by hand (torch._foreach_*)."""
    hand_written = []
    for module, tree in modules().items():
        if module == "dfkd_core.models.updates":
            continue
        for node in ast.walk(tree):
            name = node.attr if isinstance(node, ast.Attribute) else ""
            if name in ("addcdiv", "addcdiv_", "lerp_") or name.startswith("_foreach_"):
                hand_written.append(f"{module}: {name}")
    assert hand_written == []


# ------------------------------------------------------------------ sub-packages: data flows one way
# The package map's floors, lowest first (dfkd_core/__init__.py): a module may import its own floor
# and the floors below it.
FLOORS = [("errors", "registry", "paths", "device", "caps", "files_out"), ("config",), ("limits",), ("events",), ("data",), ("models",),
          ("synth",), ("userrun",), ("engine",), ("runs",), ("experiments",), ("dashboard",), ("cli", "commands", "__main__")]
# Upward edges still there, each with why; remove an entry when its edge goes (the test fails on a stale one).
KNOWN_UPWARD = {
    # config checks every setting in one place, names that live in registries above it included
    # (function-level imports: the registries are filled by the modules that define the parts)
    ("config", "data"): "the dataset name is looked up in data.DATASETS",
    ("config", "limits"): "validate() checks the run's memory and work budget",
    ("config", "synth"): "sampler names, α specs and objective terms are looked up in synth's registries",
    ("config", "userrun"): "the user-input fields (teacher file, data, spec, units) are checked by userrun.validate_user_fields",
    ("limits", "data"): "the work budget needs the dataset's size from data.catalog",
    ("limits", "synth"): "the work budget reads each sampler's declared cost (Sampler.work_per_epoch, cost_settings)",
}


def area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def sub_package_graph() -> dict[str, set[str]]:
    graph, _ = import_graph()
    out: dict[str, set[str]] = {}
    for importer, imported in graph.items():
        out.setdefault(area(importer), set())
        for target in imported:
            if area(target) != area(importer):
                out[area(importer)].add(area(target))
    return out


def test_sub_packages_import_each_other_without_a_loop():
    """Not only modules: config → models.user_models → … → config was a loop of sub-packages
    with no loop of modules; no such loop is left."""
    graph = sub_package_graph()
    assert cycles(graph) == []
    planted = {**graph, "models": graph["models"] | {"engine"}}  # export.py once imported the engine from models/
    assert cycles(planted)


def test_data_flows_one_way_as_the_package_map_says():
    floor = {name: i for i, names in enumerate(FLOORS) for name in names}
    graph = sub_package_graph()
    assert set(graph) - {""} <= set(floor), "a sub-package the floors above do not place"
    upward = {(a, b) for a, targets in graph.items() for b in targets if a and b and floor[a] < floor[b]}
    assert upward - set(KNOWN_UPWARD) == set(), "a new upward import: move the code, or list it with why"
    assert set(KNOWN_UPWARD) - upward == set(), "a known upward edge is gone: take it off KNOWN_UPWARD"


# ------------------------------------------------------------------ the dashboard's house (issue 23)
PAGES = sorted((REPO / "pages").glob("*.py"))
MAX_DASHBOARD_LINES = 500


def page_imports(path) -> list[str]:
    """Every module a page imports ('from a.b import c' gives 'a.b.c' when c is a module of a.b, else 'a.b')."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            out += [f"{node.module}.{alias.name}" if node.module == "dfkd_core" else node.module for alias in node.names]
    return out


def test_no_page_imports_the_entry_point():
    assert len(PAGES) >= 7
    offenders = [p.name for p in PAGES if any(m == "app" or m.startswith("app.") for m in page_imports(p))]
    assert offenders == []


def test_pages_reach_dfkd_core_only_through_the_dashboard_facade():
    def allowed(module: str) -> bool:
        return not module.startswith("dfkd_core") or module == "dfkd_core.dashboard" or module.startswith("dfkd_core.dashboard.")

    reaching = {p.name: [m for m in page_imports(p) if not allowed(m)] for p in PAGES}
    assert {name: mods for name, mods in reaching.items() if mods} == {}
    # the check can fail: a page importing the run store is caught
    assert not allowed("dfkd_core.runs.runstore") and not allowed("dfkd_core.experiments")


def test_no_file_of_the_dashboard_package_is_over_500_lines():
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in (PACKAGE / "dashboard").glob("*.py")}
    assert len(sizes) >= 5 and {n: s for n, s in sizes.items() if s > MAX_DASHBOARD_LINES} == {}


def test_only_the_ui_module_of_dfkd_core_imports_streamlit():
    importing = sorted(name for name, tree in modules().items()
                       if any((isinstance(n, ast.Import) and any(a.name.split(".")[0] == "streamlit" for a in n.names))
                              or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "streamlit")
                              for n in ast.walk(tree)))
    assert importing == ["dfkd_core.dashboard.ui"]
