"""Several letters over one SMTP session (a route's canaries to several recipients in one
slot), against aiosmtpd on 127.0.0.1: one connection and one AUTH for all, RSET after a
refusal, and a session that breaks mid-batch loses no letter."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import pytest

from monitor.adapters.credentials import Credentials
from monitor.adapters.smtp import Letter, send_letters
from monitor.adapters.tls import client_context
from monitor.core.models import Phase, Security, SendOutcome
from tests.integration import test_smtp_faults
from tests.integration.test_smtp_faults import (
    MESSAGE,
    PASSWORD,
    Endpoint,
    Mailbox,
    RecordingServer,
    aiosmtpd_server,
    failed,
    replies_of,
)

pki = test_smtp_faults.pki  # the fixture: a CA and the server's certificate from it

RECIPIENTS = ["bob@example.test", "carol@example.test", "dave@example.test"]
OPENING = [(Phase.GREETING, 220), (Phase.EHLO, 250), (Phase.TLS, 220), (Phase.EHLO, 250)]
OPENING += [(Phase.AUTH, 235)]
TRANSACTION = [(Phase.MAIL_FROM, 250), (Phase.RCPT_TO, 250), (Phase.DATA, 250)]
TRANSACTED = ["MAIL", "RCPT", "DATA"]  # the commands of one accepted letter


@dataclass
class Counting(Mailbox):
    """Counts connections, gives each message its own queue id, and can break a session once
    (`breaks`: after_data, 421_at_mail or hang_up_at_rcpt, on the first connection after its
    first message)."""

    breaks: str = ""
    connections: int = 0
    queue_ids: list[str] = field(default_factory=list)
    envelopes: list[tuple[list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:
        await super().handle_DATA(server, session, envelope)
        self.envelopes.append((list(envelope.rcpt_tos), envelope.original_content))
        self.queue_ids.append(secrets.token_hex(5).upper())
        return f"250 2.0.0 Ok: queued as {self.queue_ids[-1]}"


class CountingServer(RecordingServer):
    """One instance per connection (aiosmtpd's protocol factory)."""

    def __init__(self, mailbox: Counting, *args, **kwargs) -> None:
        super().__init__(mailbox, *args, **kwargs)
        mailbox.connections += 1
        self.number = mailbox.connections
        self.accepted = 0

    def _breaks(self, how: str) -> bool:
        return self.event_handler.breaks == how and self.number == 1 and self.accepted == 1

    async def smtp_DATA(self, arg: str) -> None:
        before = len(self.event_handler.messages)
        await super().smtp_DATA(arg)
        self.accepted += len(self.event_handler.messages) - before
        if self._breaks("after_data"):
            self.transport.close()  # the reply was pushed and drained: it still arrives

    async def smtp_MAIL(self, arg: str) -> None:
        if self._breaks("421_at_mail"):
            await self.push("421 4.7.0 mx.example.test too many messages, closing")
            self.transport.close()
            return
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str) -> None:
        if self._breaks("hang_up_at_rcpt"):
            self.transport.abort()
            return
        await super().smtp_RCPT(arg)


def letter(n: int) -> Letter:
    message = MESSAGE.replace(b"A canary.", f"Canary number {n}.".encode())
    return Letter(message, "alice@example.test", RECIPIENTS[n])


async def send_three(mailbox: Counting, pki, password: str = PASSWORD) -> list[SendOutcome]:
    told: list[tuple[int, SendOutcome]] = []
    server = {"starttls": pki.server_context, "server_class": CountingServer}
    async with aiosmtpd_server(mailbox, **server) as port:
        await send_letters(
            Endpoint("127.0.0.1", port, Security.STARTTLS),
            login=Credentials("alice", password),
            letters=[letter(n) for n in range(3)],
            ssl_context=client_context([pki.ca_file]),
            sent=lambda index, outcome: told.append((index, outcome)),
        )
    assert [index for index, _ in told] == [0, 1, 2]  # each told once, in order
    return [outcome for _, outcome in told]


def shared(outcome: SendOutcome) -> list[bool]:
    return [reply.shared for reply in outcome.replies]


def commands(mailbox: Counting) -> list[str]:
    return [command for command, _ in mailbox.seen]


async def test_one_session_one_login_three_transactions(pki):
    mailbox = Counting()
    outcomes = await send_three(mailbox, pki)

    assert mailbox.connections == 1 and mailbox.logins == [("alice", PASSWORD)]
    assert commands(mailbox) == ["EHLO", "STARTTLS", "EHLO", "AUTH", *TRANSACTED * 3, "QUIT"]
    assert mailbox.envelopes == [([RECIPIENTS[n]], letter(n).message) for n in range(3)]
    assert [o.queue_id for o in outcomes] == mailbox.queue_ids and len(set(mailbox.queue_ids)) == 3
    for n, outcome in enumerate(outcomes):
        assert outcome.ok and replies_of(outcome) == OPENING + TRANSACTION
        # The opening is the first letter's; the others show it too, marked shared.
        assert shared(outcome) == [n > 0] * len(OPENING) + [False] * len(TRANSACTION)
        assert outcome.tls_version == mailbox.tls_versions[n]
    # Each hand-off is its own DATA's answer, not the session's start.
    handoffs = [o.handoff_monotonic for o in outcomes]
    assert handoffs == sorted(handoffs) and len(set(handoffs)) == 3
    assert outcomes[0].handoff_at <= outcomes[1].handoff_at <= outcomes[2].handoff_at


async def test_a_refused_recipient_fails_alone_and_the_session_is_reset(pki):
    refusal = "550 5.1.1 <carol@example.test>: Recipient address rejected: User unknown"
    mailbox = Counting(rcpt_replies={RECIPIENTS[1]: refusal})
    first, refused, third = await send_three(mailbox, pki)

    assert mailbox.connections == 1
    assert first.ok and third.ok
    assert failed(refused) == ("rejected", Phase.RCPT_TO, False, 550, "5.1.1")
    assert replies_of(refused) == [*OPENING, (Phase.MAIL_FROM, 250), (Phase.RCPT_TO, 550)]
    assert refused.last_reply.text == refusal.split(" ", 1)[1]
    assert refused.queue_id is None and refused.handoff_at is None
    transactions = commands(mailbox)[4:]
    assert transactions == [*TRANSACTED, "MAIL", "RCPT", "RSET", *TRANSACTED, "QUIT"]
    # The reset envelope: the third message went to its own recipient only.
    assert mailbox.envelopes == [([RECIPIENTS[n]], letter(n).message) for n in (0, 2)]


async def test_a_refused_login_fails_every_letter_with_it(pki):
    wrong = "wrong-" + secrets.token_hex(4)
    mailbox = Counting()
    outcomes = await send_three(mailbox, pki, password=wrong)

    # One session: aiosmtplib tries PLAIN, then LOGIN, and gives up.
    assert mailbox.connections == 1 and set(mailbox.logins) == {("alice", wrong)}
    assert not {"MAIL", "RCPT", "DATA"} & set(commands(mailbox))
    for n, outcome in enumerate(outcomes):
        assert failed(outcome) == ("auth_failed", Phase.AUTH, False, 535, "5.7.8")
        assert replies_of(outcome) == [*OPENING[:-1], (Phase.AUTH, 535)]
        assert shared(outcome) == [n > 0] * len(OPENING)


@pytest.mark.parametrize("how", ["after_data", "421_at_mail"])
async def test_a_session_ended_between_letters_hands_the_rest_to_a_new_one(pki, how):
    mailbox = Counting(breaks=how)
    first, second, third = await send_three(mailbox, pki)

    assert mailbox.connections == 2 and len(mailbox.logins) == 2
    assert all(o.ok for o in (first, second, third))
    assert mailbox.envelopes == [([RECIPIENTS[n]], letter(n).message) for n in range(3)]
    assert [o.queue_id for o in (first, second, third)] == mailbox.queue_ids
    # The second letter heard the first session's opening (shared), its 421 if any, then
    # opened the new session; the third rode on that one.
    ended = [(Phase.MAIL_FROM, 421)] if how == "421_at_mail" else []
    assert replies_of(second) == OPENING + ended + OPENING + TRANSACTION
    assert shared(second) == [True] * len(OPENING) + [False] * (
        len(ended) + len(OPENING) + len(TRANSACTION)
    )
    assert replies_of(third) == OPENING + TRANSACTION
    assert shared(third) == [True] * len(OPENING) + [False] * len(TRANSACTION)


async def test_a_session_broken_inside_a_transaction_fails_that_letter_only(pki):
    mailbox = Counting(breaks="hang_up_at_rcpt")
    first, broken, third = await send_three(mailbox, pki)

    assert mailbox.connections == 2
    assert first.ok and third.ok
    # Its MAIL was taken up: it failed as it would have alone, with the real failure.
    assert failed(broken) == ("connection_lost", Phase.RCPT_TO, True, None, None)
    assert replies_of(broken) == [*OPENING, (Phase.MAIL_FROM, 250)]
    assert replies_of(third) == OPENING + TRANSACTION and not any(shared(third))
    assert mailbox.envelopes == [([RECIPIENTS[n]], letter(n).message) for n in (0, 2)]
