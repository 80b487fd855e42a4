"""The one log configuration: what libraries may say, and secrets scrubbed from any line."""

from __future__ import annotations

import logging

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
