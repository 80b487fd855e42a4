"""Which revision the migrations end at, read without Alembic: importing it (with Mako and
Pygments) costs a one-shot `probe` about 0.1 CPU-s (issue #17), and a database already at
head needs no migration. Store.upgrade compares this with the database's alembic_version
and runs Alembic only when they differ."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path


@cache
def migrations_head(versions: Path) -> str | None:
    """The head revision of the migration files in `versions`. None when they are not the
    plain chain Alembic's template writes (a merge, a value this cannot read): Alembic
    decides then. tests/integration/test_store.py holds it to Alembic's own answer."""
    down: dict[str, str | None] = {}
    for path in versions.glob("*.py"):
        found = _assigned(path.read_text(encoding="utf-8"), ("revision", "down_revision"))
        if found is None:
            return None
        revision, previous = found
        if not isinstance(revision, str) or not isinstance(previous, str | None):
            return None
        down[revision] = previous
    heads = down.keys() - set(down.values())
    return heads.pop() if len(heads) == 1 else None


def _assigned(source: str, names: tuple[str, ...]) -> list[object] | None:
    """The values given to each of `names` at the start of a line (`revision: str = "0008"`),
    or None unless each is given exactly once as a Python literal."""
    values: dict[str, list[object]] = {name: [] for name in names}
    for line in source.splitlines():
        target, equals, value = line.partition("=")
        name = target.split(":", 1)[0].strip()
        if not equals or name not in values or not line.startswith(name):
            continue
        try:
            values[name].append(ast.literal_eval(value.strip()))
        except (SyntaxError, ValueError):
            return None
    if any(len(found) != 1 for found in values.values()):
        return None
    return [values[name][0] for name in names]
