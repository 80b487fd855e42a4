"""A held delivery is timed by the look-out: the recorded window is narrow and holds the truth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.config.load import load_config
from monitor.core.canary import TOKEN_HEADER
from monitor.core.models import ArrivalSource, Verdict
from monitor.harness.demo import demo_monitor, write_config
from monitor.probe.setup import opened

pytestmark = pytest.mark.mailstack

# Dovecot writes the file in tmp/ (its mtime) and renames it into new/, where IMAP can first
# see it: the mtime may precede the last look that missed it by that write-to-rename step.
RENAME_SLACK = timedelta(milliseconds=20)


def landed_at(maildir, token: str) -> datetime:
    """The mtime (ns precision) of the one Maildir file carrying this canary's token."""
    found = [
        path
        for path in maildir.glob("**/*")
        if path.is_file()
        and path.parent.name in ("new", "cur")
        and f"{TOKEN_HEADER}: {token}".encode() in path.read_bytes()
    ]
    assert len(found) == 1, found
    return datetime.fromtimestamp(found[0].stat().st_mtime_ns / 1e9, UTC)


async def test_a_held_delivery_gets_a_narrow_window_around_its_true_arrival(mailstack, tmp_path):
    # The demo's keys, the canary kept for its file's mtime, the look-out spelled out.
    fine = 'cleanup = false\nlook_out_resolution = "200ms"\nlook_out_fine_for = "30s"\n'
    route = ("to-slow", "alice", {"slow": Verdict.INBOX})
    path = write_config(mailstack, tmp_path, routes=[route], monitor=demo_monitor(tmp_path) + fine)
    cfg = load_config(path)
    async with opened(cfg) as runner:
        await runner.start_watchers(["slow"])
        assert await runner.watchers["slow"].wait_ready(10)
        # Postfix holds mail for `slow` for delay_seconds, then lets it go.
        record = await runner.probe(cfg.routes[0], "slow", deadline=mailstack.delay_seconds + 20)
        assert record is not None and record.decision is not None and record.send is not None
        decision = record.decision
        assert decision.verdict is Verdict.INBOX
        stored = await runner.store.by_token(record.planned.token)
        truth = landed_at(mailstack.root / "mail" / "slow" / "Maildir", record.planned.token)
        assert record.sighting is not None  # kept for the mtime above; now gone
        assert await runner.watchers["slow"].delete(record.sighting)

    # closed by our look, or by the server's stamp where its second ends inside the window
    assert decision.arrival_source in (ArrivalSource.LOOKOUT, ArrivalSource.INTERNALDATE)
    after, before = decision.arrived_after, decision.arrived_before
    assert after is not None and before is not None
    assert before - after < timedelta(seconds=0.3), (after, before)
    assert after - RENAME_SLACK <= truth <= before, (after, truth, before)
    assert after <= decision.arrived_at <= before
    assert truth - record.send.handoff_at >= timedelta(seconds=mailstack.delay_seconds)
    # The window is what the database keeps, to the microsecond.
    assert stored is not None and stored.decision is not None
    assert (stored.decision.arrived_after, stored.decision.arrived_before) == (after, before)
