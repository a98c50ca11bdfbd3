"""The package's layers import downward only, and no two modules import each other.

Read from the source (every import statement, those inside functions too, as import-linter's
grimp reads them), so that a lazy import cannot hide an upward dependency. A module may import its
own layer or a lower one; modules of one package (a package and its submodules) count as one unit
for cycles.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
# Bottom first. Each entry is a module or a package (its submodules share its layer).
LAYERS = [
    # foundations: paths, records, text, registries of names, the sandbox
    {"prunebench", "paths", "provenance", "io", "latex", "prompts", "wordproblems", "taskfiles", "scheduling",
     "runtime", "sandbox", "pruning.spec", "datasets", "evaluation"},
    {"grid"},                                          # what a run builds: cells, calibration sets, priorities
    {"config"},                                        # the workflow's configuration and its checks
    {"grading", "calibration", "training", "recovery", "architectures"},   # data, training, model types
    {"models"},                                        # loading any checkpoint: no pruning code
    {"pruning"},                                       # methods and the driver
    {"generation", "speed", "lmeval", "verify"},       # running models
    {"tables", "figures", "suite", "study", "budget", "findings", "comparison", "outputs", "reference", "report"},  # presentation; outputs: their registry
    {"cli", "__main__"},
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "prunebench").rglob("*.py"):
        parts = list(path.relative_to(SRC / "prunebench").with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts) or "prunebench"] = path
    return found


@functools.lru_cache(maxsize=1)
def _graph() -> dict[str, set[str]]:
    """module -> the prunebench modules it imports (names relative to the package)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        package = [] if name == "prunebench" else package
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - (node.level - 1)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                    names = [f"{stem}.{alias.name}".strip(".") for alias in node.names] + [stem]
                else:
                    names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
                    names = [n.removeprefix("prunebench.") if n.startswith("prunebench.") else
                             ("prunebench" if n == "prunebench" else None) for n in names]
            else:
                continue
            for target in names:
                if target is None:
                    continue
                target = target.removeprefix("prunebench.") if target.startswith("prunebench.") else target
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def _unit(module: str) -> str:
    """The layer entry a module belongs to: itself, or the package that holds it."""
    for layer in LAYERS:
        for entry in layer:
            if module == entry or module.startswith(entry + "."):
                return entry
    raise AssertionError(f"prunebench.{module} is in no layer of tests/test_layers.py: place it")


def _layer(module: str) -> int:
    entry = _unit(module)
    return next(i for i, layer in enumerate(LAYERS) if entry in layer)


def _unit_edges() -> set[tuple[str, str]]:
    return {(_unit(a), _unit(b)) for a, targets in _graph().items() for b in targets if _unit(a) != _unit(b)}


def test_every_module_has_a_layer():
    for module in _graph():
        _unit(module)


def test_imports_go_downward_only():
    upward = sorted(f"prunebench.{a} (layer {_layer(a)}) imports prunebench.{b} (layer {_layer(b)})"
                    for a, b in _unit_edges() if _layer(b) > _layer(a))
    assert not upward, "\n".join(upward)


def test_no_two_units_import_each_other():
    edges = _unit_edges()
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target] if target in path else [node, target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, path + [target])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])


def test_loading_a_checkpoint_imports_no_pruning_code():
    graph = _graph()
    reached, todo = set(), ["models"]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(graph.get(module, ()))
    assert not {m for m in reached if m == "pruning" or m.startswith("pruning.")} - {"pruning.spec"}
    assert "architectures" in reached
