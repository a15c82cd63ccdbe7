"""The package layering holds: imports point downward only, and workflow code imports no I/O library.

api/, worker.py → workflows/ → activities/ → db/ → core/; stack/ (CLI, embedded services) sits on top and
nothing imports it.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What each top-level package (or module) may import from the project, besides itself.
MAY_IMPORT: dict[str, set[str]] = {
    "core": set(),
    "db": {"core"},
    "activities": {"db", "core"},
    "workflows": {"activities", "core"},
    "api": {"workflows", "activities", "db", "core"},
    "worker": {"workflows", "activities", "db", "core"},
    "stack": {"api", "worker", "workflows", "activities", "db", "core"},
}
# Workflow code runs in Temporal's sandbox and must stay deterministic.
IO_LIBRARIES = {"httpx", "sqlalchemy", "sqlmodel", "psycopg", "asyncpg", "fastapi", "starlette", "requests",
                "socket", "subprocess", "urllib"}


def _sources(layer: str) -> list[Path]:
    single = ROOT / f"{layer}.py"
    return [single] if single.exists() else sorted((ROOT / layer).rglob("*.py"))


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, top-level name) of every absolute import in a file, including imports inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def upward_imports(layer: str) -> list[str]:
    """`file:line imports X` for each import of a project package this layer may not use."""
    allowed = MAY_IMPORT[layer] | {layer}
    return [f"{path.relative_to(ROOT)}:{line} imports {name}"
            for path in _sources(layer) for line, name in imported_modules(path)
            if name in MAY_IMPORT and name not in allowed]


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_imports_point_downward(layer: str) -> None:
    assert upward_imports(layer) == []


def test_workflow_code_imports_no_io_library() -> None:
    offending = [f"{path.relative_to(ROOT)}:{line} imports {name}"
                 for path in _sources("workflows") for line, name in imported_modules(path) if name in IO_LIBRARIES]
    assert offending == []


def test_the_walker_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import core.ids\n\ndef f():\n    from stack.cli import main\n")
    assert imported_modules(module) == [(1, "core"), (4, "stack")]
