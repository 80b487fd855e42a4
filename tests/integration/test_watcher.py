"""The watcher against the harness's real Postfix + Dovecot, with real signed canaries."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage, Message
from email.policy import SMTP
from typing import Any

import pytest
from pydantic import SecretStr

from monitor.adapters.credentials import Credentials
from monitor.adapters.imap import ImapError, ImapSession
from monitor.adapters.tls import client_context
from monitor.config.schema import Account, Endpoint
from monitor.core import canary
from monitor.core.models import Failure, Role, Security, Sighting, utcnow
from monitor.harness.dovecot import DOVEADM
from monitor.harness.mailstack import MailStack
from monitor.probe.watcher import Watcher

pytestmark = pytest.mark.mailstack

KEY = canary.new_key()  # only this module's canaries verify
ROUTE = "watcher-test"


def verify(headers: Message) -> str | None:
    return canary.verify_message(KEY, headers)


def _account(stack: MailStack, user: str, password: str | None = None) -> Account:
    mailbox = stack.users[user]
    imap = Endpoint(host=stack.host, port=stack.imaps_port, security=Security.TLS, timeout=10)
    secret = SecretStr(mailbox.password if password is None else password)
    return Account(
        name=user, email=mailbox.email, username=mailbox.email, password=secret, imap=imap
    )


@dataclass
class Canary:
    token: str
    raw: bytes
    message_id: str


def _canary(stack: MailStack, user: str, sent_at: datetime | None = None) -> Canary:
    sender, recipient = stack.users["alice"].email, stack.users[user].email
    token = canary.new_token(KEY, ROUTE, sent_at or utcnow())
    message_id = canary.new_message_id(sender)
    raw = canary.build_message(
        token=token, route=ROUTE, sender=sender, recipient=recipient, message_id=message_id,
        sender_name="alice", recipient_name=user,
    )  # fmt: skip
    return Canary(str(token), raw, message_id)


def _forged(real: Canary) -> bytes:
    """The same token header, but claimed for another route: the MAC no longer matches."""
    raw = real.raw.replace(f"{canary.ROUTE_HEADER}: {ROUTE}".encode(), b"X-Mailcanary-Route: x")
    return raw.replace(real.message_id.encode(), _forged_id(real).encode())


def _forged_id(real: Canary) -> str:
    return f"<forged.{real.token}@example.test>"


def _plain(subject: str, token_header: str | None = None) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "x@example.test", "y@example.test", subject
    if token_header is not None:
        message[canary.TOKEN_HEADER] = token_header
    message.set_content("not a canary\n")
    return message.as_bytes(policy=SMTP)


def _submit(stack: MailStack, raw: bytes, to: str) -> None:
    alice = stack.users["alice"]
    with smtplib.SMTP(stack.host, stack.submission_port, timeout=10) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=str(stack.ca_file)))
        smtp.login(alice.email, alice.password)
        smtp.sendmail(alice.email, [to], raw)


def _message_ids(stack: MailStack, user: str, folder: str) -> set[str]:
    return {str(message_from_bytes(raw)["Message-ID"]) for raw in stack.list_messages(user, folder)}


def _subjects(stack: MailStack, user: str, folder: str) -> set[str]:
    messages = [message_from_bytes(raw) for raw in stack.list_messages(user, folder)]
    return {" ".join(str(message["Subject"]).split()) for message in messages}


@dataclass
class Seen:
    """What the watcher told us; `until` waits on it (never a sleep)."""

    sightings: dict[str, Sighting] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_sighting(self, sighting: Sighting) -> None:
        self.sightings[sighting.token] = sighting
        self.changed.set()

    async def on_failure(self, failure: Failure) -> None:  # callbacks may be coroutines
        self.failures.append(failure)
        self.changed.set()

    async def until(self, condition: Callable[[], object], within: float = 10.0) -> None:
        async def wait() -> None:
            while not condition():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), within)


@asynccontextmanager
async def _watching(
    stack: MailStack, account: Account, seen: Seen, poll_interval: float = 300, **options: Any
) -> AsyncIterator[Watcher]:
    watcher = Watcher(
        account,
        ssl_context=client_context([stack.ca_file]),
        poll_interval=poll_interval,  # 300: anything seen quickly was seen through IDLE or a look
        verify=verify,
        on_sighting=seen.on_sighting,
        on_failure=seen.on_failure,
        **options,
    )
    await watcher.start()
    try:
        yield watcher
    finally:
        await asyncio.wait_for(watcher.stop(), 10)


async def test_sees_a_canary_in_the_inbox_through_idle_at_once(mailstack: MailStack) -> None:
    seen = Seen()
    async with _watching(mailstack, _account(mailstack, "bob"), seen) as watcher:
        assert await watcher.wait_ready(10) and watcher.connected
        sent = _canary(mailstack, "bob")
        noise = _plain("not for the watcher", token_header="not-a-token")
        await asyncio.to_thread(_submit, mailstack, noise, mailstack.users["bob"].email)
        before_send = utcnow()
        await asyncio.to_thread(_submit, mailstack, sent.raw, mailstack.users["bob"].email)
        await seen.until(lambda: sent.token in seen.sightings)

    sighting = seen.sightings[sent.token]
    assert list(seen.sightings) == [sent.token]  # the look-alike was not counted
    assert (sighting.role, sighting.folder) == (Role.INBOX, "INBOX")
    assert 0 <= (sighting.detected_at - before_send).total_seconds() < 2.0
    for stamp in (sighting.internal_date, sighting.received_at):  # second precision
        assert stamp is not None and stamp.tzinfo is not None
        assert -1.5 < (stamp - before_send).total_seconds() < 3
    assert sighting.message_id == sent.message_id
    assert sighting.uid > 0 and sighting.uidvalidity > 0
    assert not seen.failures


async def test_spam_sighting_find_and_a_delete_that_touches_nothing_else(
    mailstack: MailStack,
) -> None:
    spam = "[Gmail]/Spam"
    seen = Seen()
    async with _watching(mailstack, _account(mailstack, "gina"), seen) as watcher:
        assert await watcher.wait_ready(10)
        sent = _canary(mailstack, "gina")
        watcher.expect(sent.token)  # as the runner does: the spam folder is looked at too
        await asyncio.to_thread(_submit, mailstack, sent.raw, mailstack.users["gina"].email)
        await seen.until(lambda: sent.token in seen.sightings)
        sighting = seen.sightings[sent.token]
        assert (sighting.role, sighting.folder) == (Role.SPAM, spam)

        found = await watcher.find(sent.token)
        assert found is not None
        assert (found.role, found.folder, found.uid) == (Role.SPAM, spam, sighting.uid)
        assert await watcher.find(_canary(mailstack, "gina").token) is None  # never sent

        neighbour = _plain(f"neighbour of {sent.token}")
        await asyncio.to_thread(mailstack.append, "gina", spam, neighbour)
        await asyncio.to_thread(mailstack.append, "gina", spam, _forged(sent))
        forged_uid = await _other_uid_with_token(mailstack, sent.token, sighting.uid)

        assert (
            await watcher.delete(replace(sighting, uidvalidity=sighting.uidvalidity + 1)) is False
        )
        assert await watcher.delete(replace(sighting, uid=forged_uid)) is False
        assert sent.message_id in _message_ids(mailstack, "gina", spam)
        assert await watcher.delete(sighting) is True
        assert await watcher.find(sent.token) is None

    left = _message_ids(mailstack, "gina", spam)
    assert sent.message_id not in left
    assert f"neighbour of {sent.token}" in _subjects(mailstack, "gina", spam)
    assert _forged_id(sent) in left


async def _other_uid_with_token(stack: MailStack, token: str, not_uid: int) -> int:
    gina = stack.users["gina"]
    endpoint = Endpoint(host=stack.host, port=stack.imaps_port, security=Security.TLS)
    login = Credentials(gina.email, gina.password)
    session = await ImapSession.open(endpoint, login, client_context([stack.ca_file]))
    try:
        await session.select("[Gmail]/Spam")
        (uid,) = set(await session.search_header(canary.TOKEN_HEADER, token)) - {not_uid}
        return uid
    finally:
        await session.close()


async def test_sweep_deletes_only_old_verified_canaries(mailstack: MailStack) -> None:
    long_ago = utcnow() - timedelta(days=2)
    old_inbox, old_spam = (
        _canary(mailstack, "dmitri", long_ago),
        _canary(mailstack, "dmitri", long_ago),
    )
    fresh = _canary(mailstack, "dmitri")
    forged_old = _canary(mailstack, "dmitri", long_ago)
    for folder, raw in [
        ("INBOX", old_inbox.raw),
        ("Спам", old_spam.raw),
        ("INBOX", fresh.raw),
        ("Спам", _forged(forged_old)),
        ("INBOX", _plain("has the header", token_header="abc.1000000000.def")),
    ]:
        await asyncio.to_thread(mailstack.append, "dmitri", folder, raw)
    watcher = Watcher(
        _account(mailstack, "dmitri"), ssl_context=client_context([mailstack.ca_file]),
        poll_interval=300, verify=verify, on_sighting=print, on_failure=print,
    )  # fmt: skip

    assert await watcher.sweep(older_than_seconds=3600) == 2

    inbox, spam = (
        _message_ids(mailstack, "dmitri", "INBOX"),
        _message_ids(mailstack, "dmitri", "Спам"),
    )
    assert old_inbox.message_id not in inbox and old_spam.message_id not in spam
    assert fresh.message_id in inbox and _forged_id(forged_old) in spam
    assert "has the header" in _subjects(mailstack, "dmitri", "INBOX")
    assert await watcher.sweep(older_than_seconds=3600) == 0


async def test_wrong_password_reports_a_permanent_auth_failure(mailstack: MailStack) -> None:
    seen = Seen()
    account = _account(mailstack, "bob", password="not-the-password")
    async with _watching(mailstack, account, seen) as watcher:
        assert await watcher.wait_ready(10) is False
        await seen.until(lambda: len(seen.failures) >= 2)  # tried again, refused again
        assert not watcher.connected
        with pytest.raises(ImapError) as caught:
            await watcher.find("anything")
    assert {(f.kind, f.transient) for f in seen.failures} == {("auth_failed", False)}
    assert watcher.last_failure is not None and watcher.last_failure.kind == "auth_failed"
    assert caught.value.failure.kind == "auth_failed"
    assert all("not-the-password" not in f.message for f in seen.failures)


async def test_reconnects_after_the_server_drops_it_and_misses_nothing(
    mailstack: MailStack,
) -> None:
    seen = Seen()
    carol = mailstack.users["carol"]  # files everything to Junk
    async with _watching(mailstack, _account(mailstack, "carol"), seen) as watcher:
        assert await watcher.wait_ready(10)
        kick = [
            DOVEADM,
            "-c",
            str(mailstack.root / "dovecot" / "dovecot.conf"),
            "kick",
            carol.email,
        ]
        await asyncio.to_thread(subprocess.run, kick, check=True, capture_output=True, timeout=10)
        await seen.until(lambda: seen.failures)
        assert {f.kind for f in seen.failures} <= {"connection_lost"}
        sent = _canary(mailstack, "carol")  # delivered while the watcher may still be away
        watcher.expect(sent.token)
        await asyncio.to_thread(_submit, mailstack, sent.raw, carol.email)
        await seen.until(lambda: sent.token in seen.sightings)
        assert seen.sightings[sent.token].role is Role.SPAM
