"""No import cycles among the app's own modules (issue 17): each module's
imports, at module level and inside functions alike (an import moved into a
function still ties the two modules together; it only hides the cycle from
Python), form a graph with no cycle."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_APP = {"tests", "migrations", "bench", "instance", "static", "templates", "translations"}


def app_modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[0] in NOT_APP or any(part.startswith(".") for part in parts):
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imported_names(tree: ast.AST, package: str) -> set[str]:
    """Every dotted name that ``tree`` imports (``from a import b`` gives a.b and a)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names.update({base, *(f"{base}.{alias.name}" for alias in node.names)})
    return names


def import_graph() -> dict[str, set[str]]:
    modules = app_modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for imported in imported_names(ast.parse(path.read_text(encoding="utf-8")), package):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]  # a name inside a module
            # A submodule taking its own package's blueprint (`from blueprints.notes
            # import bp`) is how a Flask package registers views, not a cycle of design.
            if imported and imported != name and not name.startswith(imported + "."):
                targets.add(imported)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module."""
    def reachable(start):
        seen, todo = set(), [start]
        while todo:
            for target in graph[todo.pop()] - seen:
                seen.add(target)
                todo.append(target)
        return seen

    reach = {name: reachable(name) for name in graph}
    components = {frozenset({name} | {other for other in reach[name] if name in reach[other]})
                  for name in graph}
    return sorted(sorted(component) for component in components if len(component) > 1)


def test_the_walker_sees_the_app_and_function_level_imports():
    graph = import_graph()
    assert {"app", "services.search.sync", "blueprints.customers"} <= graph.keys()
    assert "services.search.store" in graph["services.search.sync"]
    assert "cli" in graph["app"]  # imported inside create_app
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert cycles(import_graph()) == []
