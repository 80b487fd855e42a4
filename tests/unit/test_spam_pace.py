"""How often a watcher asks its mailbox's spam folder, outside the look-out's looks."""

from __future__ import annotations

import ssl

from pydantic import SecretStr

from monitor.config.schema import Account, Endpoint
from monitor.core.models import Security
from monitor.probe.lookout import Cadence
from monitor.probe.watcher import QUIET_SPAM_EVERY, Watcher


def _watcher(poll_interval: float) -> Watcher:
    imap = Endpoint(host="127.0.0.1", port=993, security=Security.TLS)
    account = Account(
        name="m", email="m@example.test", username="m", password=SecretStr("x"), imap=imap
    )
    return Watcher(
        account,
        ssl_context=ssl.create_default_context(),
        poll_interval=poll_interval,
        verify=lambda _: None,
        on_sighting=print,
        on_failure=print,
    )


def test_the_poll_interval_while_a_canary_is_awaited_else_the_quiet_pace() -> None:
    watcher = _watcher(15.0)
    assert watcher.spam_every == QUIET_SPAM_EVERY
    watcher.expect("a")
    watcher.expect("b")
    assert watcher.spam_every == 15.0
    watcher.stop_expecting("a")
    assert watcher.spam_every == 15.0  # b is still awaited, however old
    watcher.stop_expecting("b")
    assert watcher.spam_every == QUIET_SPAM_EVERY


def test_a_canary_awaited_without_the_look_out_keeps_the_poll_interval_but_asks_for_no_look() -> (
    None
):
    watcher = _watcher(15.0)
    watcher.expect("quiet", look_out=False)
    assert watcher.spam_every == 15.0
    assert watcher.pause() is None  # no look of its own: the push and the poll serve
    watcher.stop_expecting("quiet")
    assert watcher.spam_every == QUIET_SPAM_EVERY


def test_a_poll_interval_longer_than_the_quiet_pace_wins() -> None:
    watcher = _watcher(QUIET_SPAM_EVERY * 2)
    assert watcher.spam_every == QUIET_SPAM_EVERY * 2
    watcher.retune(Cadence(), 20.0)
    assert watcher.spam_every == QUIET_SPAM_EVERY
