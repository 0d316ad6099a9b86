"""The folder list is the architecture: lower layers never import higher ones, and no two
modules of the package import each other (directly or through a chain)."""

from __future__ import annotations

import ast
from pathlib import Path

import disentangled_ssl

PACKAGE = Path(disentangled_ssl.__file__).parent

#: Lowest first. A module may import its own layer and the layers before it.
LAYERS = ["_", "data", "nn", "losses", "methods", "training", "evaluation", "estimator",
          "experiments", "cli"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Package modules imported by ``path`` anywhere (lazy imports too), except under
    ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for block in ast.walk(tree) if _type_checking_block(block)
               for n in ast.walk(block)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return {m for m in found if m in modules}


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return LAYERS.index("cli")  # the package's __init__: public names from every layer
    top = parts[1]
    return 0 if top.startswith("_") else LAYERS.index(top)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def test_every_top_level_folder_is_a_known_layer():
    tops = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    tops |= {p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_")}
    assert tops <= set(LAYERS), sorted(tops - set(LAYERS))


def test_lower_layers_never_import_higher_ones():
    inversions = [
        f"{a} -> {b}" for a, deps in _graph().items() for b in deps if _layer(b) > _layer(a)
    ]
    assert inversions == []


def test_training_imports_nothing_from_the_estimator():
    graph = _graph()
    offenders = [m for m, deps in graph.items() if m.startswith("disentangled_ssl.training")
                 and any(d.startswith("disentangled_ssl.estimator") for d in deps)]
    assert offenders == []


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(trail[trail.index(dep):] + [dep] if dep in trail else [node, dep])
            elif dep not in state:
                visit(dep, [*trail, dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []
