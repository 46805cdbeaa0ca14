"""The house rules of the layout (README, Layout), checked on the source: one writer of the audit
trail, no import cycle between the project's modules, no mocking library in production code, no markup
marked safe by hand."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("config", "accounts", "ringpools", "scaling", "bench")
AUDIT_WRITER = Path("scaling/audit.py")
# Ways to write the events table: build a row, create through the manager, or name the table in SQL.
WRITES_EVENTS = re.compile(
    r"(?<!class )ScalingEvent\(|ScalingEvent\.objects\.(create|bulk_create|get_or_create|update_or_create)"
    r"|ScalingEvent\._meta\.db_table|(INSERT INTO|UPDATE|DELETE FROM)\s+scaling_scalingevent"
)


def production_sources() -> dict[Path, str]:
    return {
        path.relative_to(ROOT): path.read_text()
        for app in APPS
        for path in sorted((ROOT / app).rglob("*.py"))
        if "migrations" not in path.parts
    }


def module_of(path: Path) -> str:
    parts = list(path.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, source: str) -> set[str]:
    """The modules `path` imports, at the top or inside functions (a lazy import hides a cycle)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_audit_trail_is_written_by_one_module_only():
    writers = sorted(
        str(path) for path, source in production_sources().items() if WRITES_EVENTS.search(source)
    )
    assert writers == [str(AUDIT_WRITER)]


def test_no_production_module_imports_a_mocking_library():
    users = sorted(
        str(path)
        for path, source in production_sources().items()
        if any(name == "mock" or name.startswith("unittest.mock") for name in imports_of(path, source))
    )
    assert users == []


def test_the_project_modules_import_each_other_without_a_cycle():
    sources = production_sources()
    modules = {module_of(path): path for path in sources}
    graph = {
        module: sorted(name for name in imports_of(path, sources[path]) if name in modules and name != module)
        for module, path in modules.items()
    }
    cycles = []
    state: dict[str, str] = {}  # "open" while on the path, "done" after

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in graph[module]:
            if state.get(imported) == "open":
                cycles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_no_production_module_marks_its_own_markup_safe():
    """Markup is laid out by templates (autoescaped) or format_html, never assembled and trusted."""
    users = sorted(str(path) for path, source in production_sources().items() if "mark_safe(" in source)
    assert users == []
