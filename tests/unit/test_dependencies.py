"""Every third-party import is declared: `pip install .` (no extras) is what users run.

The bare-install integration test proves it on a real wheel; this catches the same mistake in
a second, by reading every `import` of the package and mapping it to its distribution.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "monitor"


def _normalized(requirement: str) -> str:
    name = re.split(r"[\s<>=!~\[;(]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return (
        {_normalized(r) for r in project["dependencies"]},
        {name: {_normalized(r) for r in reqs} for name, reqs in extras.items()},
    )


def _imports(path: Path) -> set[str]:
    """Top-level names of absolute imports, lazy ones inside functions included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"monitor"}


def _undeclared(allowed: set[str], *, harness: bool) -> list[str]:
    dists = packages_distributions()
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ("harness" in path.relative_to(PACKAGE).parts) != harness:
            continue
        for top in sorted(_imports(path)):
            names = {_normalized(d) for d in dists.get(top, [])}
            if not names & allowed:
                owner = ", ".join(sorted(names)) or "not installed here"
                wrong.append(f"{path.relative_to(ROOT)}: {top} ({owner})")
    return wrong


def test_code_outside_the_harness_imports_only_base_dependencies():
    base, _ = _declared()
    assert _undeclared(base, harness=False) == []


def test_the_harness_imports_only_base_and_demo_dependencies():
    base, extras = _declared()
    assert _undeclared(base | extras["demo"], harness=True) == []
