"""The one log configuration: what libraries may say, and secrets scrubbed from any line."""

from __future__ import annotations

import logging
import subprocess
import sys

import structlog

from monitor import logs

URL = "https://hooks.example.test/services/T0001/B0002/ZZsecretZZ"


def test_webhook_urls_never_reach_the_log_at_any_level(capsys) -> None:
    logs.configure("DEBUG", json=True)  # the most a user can ask for (-v on `run`)
    logs.hide(URL)
    logging.getLogger("httpx").info("HTTP Request: POST %s 200", URL)
    logging.getLogger("httpcore.connection").debug("connect_tcp.started url=%s", URL)
    logging.getLogger("some.library").warning("could not reach %s", URL)
    structlog.get_logger("monitor.test").info("delivery", target=URL, note=f"to {URL}")
    err = capsys.readouterr().err
    assert "ZZsecretZZ" not in err and "hooks.example.test" not in err
    # Lines that name it still come out, scrubbed, so nothing else is lost.
    assert "could not reach ***" in err and '"target": "***"' in err
    assert "HTTP Request" not in err and "connect_tcp" not in err


# What a process that imports monitor gets from `import structlog` (monitor/__init__.py): no
# rich behind it (issue #17: rich's tracebacks and Pygments cost a Nagios check ~0.05 CPU-s
# and a daemon ~3.5 MB), the console renderer with plain tracebacks, and rich itself intact
# for the CLI's console. A fresh interpreter: this one imported structlog long ago.
WITHOUT_RICH = """
import logging, sys
import monitor
import structlog
loaded = sorted(n for n in ("rich", "rich.traceback", "pygments") if sys.modules.get(n))
from monitor import logs
logs.configure("INFO", json=False)
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("some.library").exception("it broke")
from rich.console import Console
Console(file=sys.stdout, markup=False).print("rich still prints")
print(loaded, structlog.dev.rich, structlog.dev.ConsoleRenderer().__class__.__name__)
"""


def test_structlog_comes_without_rich_and_renders_plain_tracebacks() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_RICH], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "rich still prints\n[] None ConsoleRenderer\n"
    assert "it broke" in done.stderr and "ZeroDivisionError: division by zero" in done.stderr
    # The traceback is the standard library's, not rich's boxed one.
    assert "Traceback (most recent call last):" in done.stderr and "╭" not in done.stderr
