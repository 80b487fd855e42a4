"""The house rules of issue #13, read from the source with `ast` (function-level and
TYPE_CHECKING imports included): no import cycles inside monitor/, SQL only in adapters/,
printing only in cli/, the probe independent of the daemon, a pure core."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "monitor"
IO_MODULES = {
    "asyncio",
    "socket",
    "ssl",
    "sqlalchemy",
    "aiosmtplib",
    "aioimaplib",
    "httpx",
    "aiosqlite",
}
CONSOLE_MODULES = {"rich", "typer"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(path: Path) -> Iterator[tuple[str, int]]:
    """Every module a file imports, anywhere in it: (dotted name, line)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                own = module_name(path)
                package = own if path.name == "__init__.py" else own.rpartition(".")[0]
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, node.lineno
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    yield f"{base}.{alias.name}", node.lineno


def own_edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for target, _ in imported(path):
            if target in MODULES and target != name and target != name.rpartition(".")[0]:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def offenders(where: str, forbidden: set[str], *, outside: bool = False) -> list[str]:
    """Files under (or, with outside, not under) `where` importing any of `forbidden`."""
    hits = []
    for name, path in sorted(MODULES.items()):
        inside = name == where or name.startswith(where + ".")
        if inside == outside:
            continue
        for target, line in imported(path):
            if any(target == f or target.startswith(f + ".") for f in forbidden):
                hits.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    return hits


def test_the_walker_sees_function_level_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from monitor.core import models\n    import sqlalchemy\n")
    names = {name for name, _ in imported(sample)}
    assert {"monitor.core.models", "sqlalchemy"} <= names
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_inside_monitor() -> None:
    assert cycles(own_edges()) == []


def test_only_adapters_and_migrations_speak_sql() -> None:
    assert (
        offenders(
            "monitor.adapters", {"sqlalchemy", "alembic", "aiosqlite", "asyncpg"}, outside=True
        )
        == []
    )


def test_nothing_below_the_cli_prints() -> None:
    below = [
        hit
        for hit in offenders("monitor.cli", CONSOLE_MODULES, outside=True)
        if not hit.startswith("monitor/harness/")
    ]
    assert below == []
    printing = []
    for name, path in MODULES.items():
        if name.startswith(("monitor.cli", "monitor.harness")):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                printing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert printing == []


def test_the_probe_stands_without_the_daemon_and_the_console() -> None:
    assert offenders("monitor.probe", {"monitor.daemon", "monitor.cli"}) == []
    assert offenders("monitor.daemon", {"monitor.cli"}) == []


def test_the_core_is_pure() -> None:
    outside_core = {
        f"monitor.{room}"
        for room in {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "core"}
    }
    assert offenders("monitor.core", IO_MODULES | CONSOLE_MODULES | outside_core) == []
