"""The package's import graph has no cycle: every module stands above all it imports."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "blurblib"


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the blurblib modules it imports, at the top or inside a function (a lazy import
    is still a dependency). `from . import name` of a submodule points at the submodule itself."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [node.module or ""]).rstrip(".")
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
                targets = subs if node.module is None and subs else [base, *subs]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("blurblib"):
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly tied group (Tarjan's algorithm), as the path that closes it."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_blurblib_modules():
    found = cycles(import_graph())
    assert not found, "import cycles (move the shared piece down a layer, or the caller up): " + "; ".join(
        " <-> ".join(group) for group in found)


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# The layers, bottom to top: a module imports from its own layer or those below it, never above.
ORDER = ("core", "data", "encoders", "training", "runs", "analysis", "workbook", "bench", "cli")


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ORDER else None


def test_no_module_imports_from_a_layer_above_its_own():
    upward = sorted(f"{a} -> {b}" for a, targets in import_graph().items() for b in targets
                    if _layer(a) and _layer(b) and ORDER.index(_layer(b)) > ORDER.index(_layer(a)))
    assert not upward, "imports that reach up a layer (move the shared piece down): " + "; ".join(upward)


def test_every_layer_module_is_named_in_the_package_map():
    """`from blurblib import <name>` (how notebooks read modules) resolves through `blurblib.LAYERS`."""
    import blurblib

    on_disk = {(p.parent.name, p.stem) for layer in blurblib.LAYERS for p in (PACKAGE / layer).glob("*.py")
               if p.stem != "__init__"}
    assert on_disk == {(layer, m) for layer, modules in blurblib.LAYERS.items() for m in modules}
    assert set(ORDER) - {"bench", "cli"} == set(blurblib.LAYERS)
    from blurblib import findings, sweep

    assert (findings.__name__, sweep.__name__) == ("blurblib.analysis.findings", "blurblib.runs.sweep")
    from blurblib import bench  # names from three layers and its own submodules, resolved on first use

    assert bench.figures.__name__ == "blurblib.bench.figures" and bench.slimfit_sweep.__module__ == "blurblib.workbook.efficiency"


# Where an import inside a function is allowed: the CLI's start-up path, which must not import torch
# (`blurb --help` builds its parser from these three modules). Everywhere else imports sit at the top.
LAZY_ALLOWED = {"blurblib.cli", "blurblib.bench.commands", "blurblib.training.config"}


def test_imports_inside_functions_only_on_the_cli_start_up_path():
    lazy = []
    for path in PACKAGE.rglob("*.py"):
        name = _module(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lazy += [f"{name}:{sub.lineno}" for sub in ast.walk(node) if isinstance(sub, ast.ImportFrom)
                         and (sub.level or (sub.module or "").startswith("blurblib")) and name not in LAZY_ALLOWED]
    assert not lazy, "imports inside functions (move them to the top of the module): " + ", ".join(sorted(lazy))
