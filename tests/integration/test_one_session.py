"""One IMAP session per watched mailbox (probe/onesession.py) against the harness's Postfix +
Dovecot: the spam folder watched through STATUS from the INBOX session, and looks that send a
UID FETCH only when the server announced new mail."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from monitor.adapters.imap import ImapSession
from monitor.core.models import Role, utcnow
from monitor.harness.mailstack import MailStack
from tests.integration.test_arrival_window import RENAME_SLACK, landed_at
from tests.integration.test_watcher import Seen, _account, _canary, _submit, _watching

pytestmark = pytest.mark.mailstack


def sessions_of(stack: MailStack, user: str) -> int:
    email = stack.users[user].email
    return sum(who == email for who, _ in stack.imap_sessions())


def maildir(stack: MailStack, user: str):
    return stack.root / "mail" / user / "Maildir"


async def test_one_session_per_mailbox_sees_a_canary_filed_into_a_localized_spam_folder(
    mailstack: MailStack,
) -> None:
    seen = Seen()
    async with _watching(mailstack, _account(mailstack, "dmitri"), seen) as watcher:
        assert await watcher.wait_ready(10) and watcher.connected
        assert sessions_of(mailstack, "dmitri") == 1
        sent = _canary(mailstack, "dmitri")  # the sieve files it into "Спам" (&BCEEPwQwBDw-)
        watcher.expect(sent.token)
        handed_off = utcnow()
        await asyncio.to_thread(_submit, mailstack, sent.raw, mailstack.users["dmitri"].email)
        await seen.until(lambda: sent.token in seen.sightings, within=5)
        assert sessions_of(mailstack, "dmitri") == 1
        sighting = seen.sightings[sent.token]
        truth = landed_at(maildir(mailstack, "dmitri"), sent.token)
        assert await watcher.delete(sighting)

    assert (sighting.role, sighting.folder) == (Role.SPAM, "Спам")
    assert sighting.detected_at - handed_off < timedelta(seconds=2)
    # The window: from the STATUS that showed nothing new to the look that found it.
    assert sighting.missed_at is not None
    assert sighting.missed_at - RENAME_SLACK <= truth <= sighting.detected_at
    assert sighting.detected_at - sighting.missed_at < timedelta(seconds=0.5)
    assert not seen.failures


async def test_a_canary_filed_into_spam_unexpected_is_seen_at_the_quiet_pace(
    mailstack: MailStack,
) -> None:
    poll = 1.5  # the quiet pace is 5 minutes by default: a canary coming after its probe ended
    seen = Seen()
    carol = mailstack.users["carol"]  # files everything to Junk
    account = _account(mailstack, "carol")
    async with _watching(mailstack, account, seen, poll, quiet_spam_every=poll) as watcher:
        assert await watcher.wait_ready(10)
        sent = _canary(mailstack, "carol")  # never expected: no look-out, IDLE on INBOX only
        await asyncio.to_thread(_submit, mailstack, sent.raw, carol.email)
        await seen.until(lambda: sent.token in seen.sightings, within=poll + 5)
        sighting = seen.sightings[sent.token]
        truth = landed_at(maildir(mailstack, "carol"), sent.token)
        assert await watcher.delete(sighting)

    assert sighting.role is Role.SPAM
    assert sighting.detected_at - truth < timedelta(seconds=poll + 0.5)
    assert sighting.missed_at is not None
    assert sighting.missed_at - RENAME_SLACK <= truth <= sighting.detected_at


async def test_a_look_that_shows_nothing_new_sends_no_fetch(
    mailstack: MailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent_commands: Counter[str] = Counter()
    looks_wanted, enough = 10, asyncio.Event()
    original = ImapSession._command

    async def counted(self: ImapSession, phase: Any, what: str, work: Any, kind: str) -> Any:
        sent_commands[what] += 1
        if sent_commands["NOOP"] >= looks_wanted:
            enough.set()
        return await original(self, phase, what, work, kind)

    monkeypatch.setattr(ImapSession, "_command", counted)
    seen = Seen()
    async with _watching(mailstack, _account(mailstack, "bob"), seen) as watcher:
        assert await watcher.wait_ready(10)
        at_start = Counter(sent_commands)
        assert at_start["NOOP"] == 0
        watcher.expect(_canary(mailstack, "bob").token)  # never sent: looks every ~0.2 s
        await asyncio.wait_for(enough.wait(), 10)
        looks = sent_commands - at_start
        # Each look: NOOP on INBOX, STATUS of Junk; nothing else while nothing arrives.
        assert looks["NOOP"] == looks_wanted
        assert looks["STATUS"] in (looks_wanted - 1, looks_wanted)
        assert set(looks) == {"NOOP", "STATUS"}, looks

        sent = _canary(mailstack, "bob")
        watcher.expect(sent.token)
        await asyncio.to_thread(_submit, mailstack, sent.raw, mailstack.users["bob"].email)
        await seen.until(lambda: sent.token in seen.sightings, within=5)
        assert sent_commands["FETCH"] - at_start["FETCH"] == 1  # announced, then fetched once
        assert await watcher.delete(seen.sightings[sent.token])
    assert seen.sightings[sent.token].role is Role.INBOX


async def test_a_missing_spam_folder_is_reported_while_inbox_is_watched(
    mailstack: MailStack,
) -> None:
    seen = Seen()
    account = _account(mailstack, "alice").model_copy(update={"spam_folder": "No Such Folder"})
    async with _watching(mailstack, account, seen) as watcher:
        assert await watcher.wait_ready(10) is False and not watcher.connected
        await seen.until(lambda: seen.failures)
        sent = _canary(mailstack, "alice")
        watcher.expect(sent.token)
        await asyncio.to_thread(_submit, mailstack, sent.raw, mailstack.users["alice"].email)
        await seen.until(lambda: sent.token in seen.sightings, within=5)
        await seen.until(lambda: len(seen.failures) >= 2)  # looked for again, still missing
        assert not watcher.connected and watcher.failed_attempts >= 2
        assert await watcher.delete(seen.sightings[sent.token])
    assert {(f.kind, f.transient) for f in seen.failures} == {("spam_folder_missing", False)}
    assert seen.sightings[sent.token].role is Role.INBOX
