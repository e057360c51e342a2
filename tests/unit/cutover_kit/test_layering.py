"""Import structure of plugins/cutover_kit, read from the source (pure AST, no Airflow needed):
no import cycle between modules (module-level and function-level imports alike), no Airflow import
in the actions layer, and the gate trigger never reaches into stages/."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[3] / "plugins"
PACKAGE = "cutover_kit"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every module of the package that `path` imports (``from a import b`` counts a.b when b is a module)."""
    found: set[str] = set()
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # a name inside a module: the module itself
                name = name.rpartition(".")[0]
            if name and name != this:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in (PACKAGE_ROOT / PACKAGE).rglob("*.py")}
    known = set(files)
    # Importing a.b.c also imports the packages a and a.b: not an edge that makes a cycle by itself.
    return {name: {dep for dep in imported_modules(path, known) if not name.startswith(dep + ".")}
            for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_two_modules_import_each_other():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_actions_import_no_airflow():
    offenders = []
    for path in (PACKAGE_ROOT / PACKAGE / "actions").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}:{node.lineno} imports {n}" for n in names if n.split(".")[0] == "airflow"]
    assert not offenders, offenders
    # Nor anything that does: the layer imports only itself and Airflow-free modules.
    graph = import_graph()
    airflow_bound = {name for name, path in ((m, PACKAGE_ROOT / (m.replace(".", "/") + ".py")) for m in graph)
                     if path.is_file() and "airflow" in {n.split(".")[0] for n in _all_imports(path)}}
    reached = {dep for name in graph if name.startswith(f"{PACKAGE}.actions") for dep in _closure(graph, name)}
    assert not reached & airflow_bound, sorted(reached & airflow_bound)


def test_the_trigger_never_imports_stages():
    deps = _closure(import_graph(), f"{PACKAGE}.triggers.slo_gate")
    assert not [d for d in deps if d.startswith(f"{PACKAGE}.stages")]


def _all_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module or "")
    return names


def _closure(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in graph.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen
