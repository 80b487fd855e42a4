"""mailcanary.

structlog without rich, in every process that imports this package (issue #17: memory and
one-shot CPU). `import structlog` runs structlog.dev and structlog.tracebacks, which import
rich's console, traceback and pretty-printer, and with them Pygments, whenever rich is
installed, and it is (typer needs it): ~0.05 CPU-s for a Nagios check and ~3.5 MB resident
for a daemon (19 MB in a bare interpreter), neither of which ever draws a rich traceback.
structlog documents rich as optional; without it the console renderer writes plain
tracebacks, which is all a log needs (a user is never shown a traceback). So the first
`import structlog` runs with `rich` hidden: a None in sys.modules makes `import rich` raise
ImportError (the import system's documented rule), which is how structlog finds rich
missing. Only structlog's own import is affected: rich is put back at once, for the CLI's
console, and loads as usual for whoever imports it. A finder on sys.meta_path (PEP 451) sees
that first import wherever it comes from, and structlog is imported only when some module
needs it (`--help` never does).
"""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec, PathFinder

TYPE_CHECKING = False  # what typing.TYPE_CHECKING is at run time, without importing typing
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any


class _StructlogWithoutRich:
    """A finder for structlog alone; it loads structlog with the path finder's loader,
    hiding rich while structlog's package runs, then leaves sys.meta_path."""

    def __init__(self) -> None:
        self.loader: Any = None

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name != "structlog":
            return None
        sys.meta_path.remove(self)  # one import to steer; later ones find it in sys.modules
        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None  # installed some other way: the other finders load it, rich and all
        self.loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        held = sys.modules.get("rich")
        sys.modules["rich"] = None  # type: ignore[assignment]
        try:
            self.loader.exec_module(module)
        finally:
            if held is not None:
                sys.modules["rich"] = held
            elif sys.modules.get("rich", False) is None:
                del sys.modules["rich"]
            module.__loader__ = self.loader  # structlog looks as if nobody had stepped in
            if module.__spec__ is not None:
                module.__spec__.loader = self.loader


if "structlog" not in sys.modules:
    sys.meta_path.insert(0, _StructlogWithoutRich())
