"""A route to several recipients sends its slot's canaries over one SMTP session, through the
real Postfix + Dovecot: Postfix's own log says how many sessions and commands it took."""

from __future__ import annotations

import asyncio
import re

import pytest

from monitor.config.load import load_config
from monitor.core.models import Phase, ProbeRecord, Verdict, utcnow
from monitor.core.slots import slot_for
from monitor.harness.demo import write_config
from monitor.probe.oneshot import probe_once
from monitor.probe.setup import READY_TIMEOUT, opened
from tests.integration.support import wait_for

pytestmark = pytest.mark.mailstack
OPENING = [Phase.GREETING, Phase.EHLO, Phase.TLS, Phase.EHLO, Phase.AUTH]


def config(mailstack, tmp_path, route: tuple[str, str, dict[str, Verdict]]):
    monitor = (
        f'database = "sqlite:///{tmp_path}/mc.db"\nstate_dir = "{tmp_path}/state"\n'
        'deadline = "20s"\npoll_interval = "2s"\n'
    )
    return load_config(write_config(mailstack, tmp_path, routes=[route], monitor=monitor))


def sessions(mailstack, queue_ids: list[str]) -> list[str]:
    """The end-of-session line (Postfix counts each command there) of each session that took
    these messages, once Postfix has logged them."""

    def ended() -> list[str] | None:
        log = mailstack.postfix_log.read_text(errors="replace")
        found: dict[int, str] = {}  # by where the line is: one smtpd serves many sessions
        for queue_id in queue_ids:
            took = re.search(rf"smtpd\[(\d+)\]: {queue_id}: client=", log)
            assert took is not None, queue_id
            pid = took.group(1)
            end = re.compile(rf"smtpd\[{pid}\]: disconnect from .*").search(log, took.end())
            if end is None:
                return None
            found[end.start()] = end.group(0).split(" from ", 1)[1]
        return list(found.values())

    return wait_for(ended, 10, "postfix to log the end of the session")  # type: ignore[return-value]


def opened_by(records: list[ProbeRecord]) -> list[bool]:
    """Per record: whether it holds the session's opening unshared (it opened the session)."""
    for record in records:
        assert record.send is not None
        assert [r.phase for r in record.send.replies[:5]] == OPENING
        assert len({r.shared for r in record.send.replies[:5]}) == 1
    return [not record.send.replies[0].shared for record in records]


async def test_a_route_to_three_mailboxes_sends_over_one_session(mailstack, tmp_path):
    recipients = {"alice": Verdict.INBOX, "bob": Verdict.INBOX, "vetted": Verdict.INBOX}
    cfg = config(mailstack, tmp_path, ("three", "alice", recipients))

    async with opened(cfg) as runner:  # the daemon's way: launch when the slot fires
        await runner.start_watchers(recipients)
        await runner.wait_watchers_ready(READY_TIMEOUT)
        records = await asyncio.gather(*runner.launch(cfg.routes[0]))
        stored = [await runner.store.by_token(r.planned.token) for r in records]

    verdicts = {r.planned.recipient: r.decision.verdict for r in records}
    assert verdicts == recipients
    queue_ids = [r.send.queue_id for r in records]
    assert len(set(queue_ids)) == 3 and all(queue_ids)
    [session] = sessions(mailstack, queue_ids)
    assert "auth=1 mail=3 rcpt=3 data=3" in session, session
    assert sorted(opened_by(records)) == [False, False, True]
    # The record as stored (history, the probe page, JSON) keeps which replies were shared.
    assert [s.send.replies for s in stored] == [r.send.replies for r in records]
    for record in records:
        delivery = record.decision.delivery_seconds
        assert record.send.handoff_at is not None and 0 <= delivery < 3


async def test_a_refused_recipient_fails_alone_in_a_one_shot_check(mailstack, tmp_path):
    recipients = {"bob": Verdict.INBOX, "reject": Verdict.SEND_FAILED, "vetted": Verdict.INBOX}
    cfg = config(mailstack, tmp_path, ("mixed", "alice", recipients))

    records = await probe_once(cfg, cfg.routes, deadline=10)  # `mailcanary probe`

    by_name = {r.planned.recipient: r for r in records}
    assert {name: r.decision.verdict for name, r in by_name.items()} == recipients
    refused = by_name["reject"].send
    assert refused.failure is not None
    assert (refused.failure.kind, refused.failure.phase, refused.failure.code) == (
        "rejected",
        Phase.RCPT_TO,
        550,
    )
    assert [r.phase for r in refused.replies[-2:]] == [Phase.MAIL_FROM, Phase.RCPT_TO]
    [session] = sessions(mailstack, [by_name["bob"].send.queue_id, by_name["vetted"].send.queue_id])
    # One login, three transactions, the refused one reset.
    assert "auth=1 mail=3 rcpt=2/3 data=2 rset=1" in session, session
    assert sorted(opened_by(records)) == [False, False, True]


async def test_a_probe_whose_slot_is_taken_leaves_the_others_to_go(mailstack, tmp_path):
    recipients = {"bob": Verdict.INBOX, "vetted": Verdict.INBOX, "alice": Verdict.INBOX}
    cfg = config(mailstack, tmp_path, ("three", "alice", recipients))
    route = cfg.routes[0]
    slot = slot_for(utcnow(), route.interval)

    async with opened(cfg) as runner:
        await runner.start_watchers(recipients)
        await runner.wait_watchers_ready(READY_TIMEOUT)
        # vetted's canary of this slot is claimed already (as by another instance).
        claimed = await runner.probe(route, "vetted", slot=slot)
        async with asyncio.timeout(60):  # a probe left waiting for its seat would hang here
            bob, taken, alice = await asyncio.gather(*runner.launch(route, slot=slot))

    assert claimed is not None and claimed.decision.verdict is Verdict.INBOX
    assert taken is None
    assert bob.decision.verdict is alice.decision.verdict is Verdict.INBOX
    [session] = sessions(mailstack, [bob.send.queue_id, alice.send.queue_id])
    assert "auth=1 mail=2 rcpt=2 data=2" in session, session
