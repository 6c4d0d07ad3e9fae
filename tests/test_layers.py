"""The package's layers point one way: no import circle (function-local imports included), and
nothing in the core library imports what serves the book (asyncrl_lab.book); the command line,
which offers both, may."""
import ast
from pathlib import Path

import asyncrl_lab

PACKAGE = Path(asyncrl_lab.__file__).parent


def module_name(path: Path) -> str:
    parts = ["asyncrl_lab", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The asyncrl_lab modules a file imports, wherever the import statement is."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("asyncrl_lab")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            elif node.module and node.module.startswith("asyncrl_lab"):
                target = node.module
            else:
                continue
            # `from . import algos` imports a module; `from .config import option` a name
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
    return found - {name}


MODULES = {module_name(p) for p in PACKAGE.rglob("*.py")}
GRAPH = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def test_the_graph_sees_function_local_imports():
    assert "asyncrl_lab.curves" in GRAPH["asyncrl_lab.run"]  # Run.plot imports it in the method
    assert "asyncrl_lab.envs" in GRAPH["asyncrl_lab.config"]


def test_no_import_circle():
    def visit(module, path):
        for target in GRAPH.get(module, ()):
            assert target not in path, " -> ".join([*path, target])
            visit(target, [*path, target])
    for module in GRAPH:
        visit(module, [module])


# The command line sits above both layers: its `grade` command runs the book's grader.
ENTRY_POINT = "asyncrl_lab.__main__"


def test_the_core_never_imports_the_book_support():
    assert GRAPH[ENTRY_POINT] & {"asyncrl_lab.book.grading"}  # the exception is still needed
    for module, targets in GRAPH.items():
        if not module.startswith("asyncrl_lab.book") and module != ENTRY_POINT:
            assert not {t for t in targets if t.startswith("asyncrl_lab.book")}, module
