"""The canaries one route sends to several recipients in one slot leave over one SMTP session.

Each probe still plans its own row first (the row exists before its canary leaves), then
takes its seat with its letter. When every seat is taken or given up (slot already claimed,
message file broken, cancelled), one task sends the letters over one session
(`smtp.send_letters`) under one of the runner's send slots, and each probe hears its own
outcome the moment its DATA is answered, so its look-out starts then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import structlog

from monitor.adapters import smtp
from monitor.adapters.credentials import credentials
from monitor.adapters.tls import client_context
from monitor.config.schema import Account, Route
from monitor.content import message as real_message
from monitor.core.canary import Token
from monitor.core.models import PlannedProbe, SendOutcome

_T = TypeVar("_T")

# Sends the letters, telling `sent` each one's outcome: see `deliver`.
Deliver = Callable[[list[smtp.Letter], smtp.Sent], Awaitable[None]]
Spawn = Callable[[Awaitable[None]], object]


async def deliver(
    sender: Account,
    state_dir: Path,
    sessions: asyncio.Semaphore,
    letters: list[smtp.Letter],
    sent: smtp.Sent,
) -> None:
    """One session (and any fresh one it needs) holds one of `sessions` throughout."""
    assert sender.smtp is not None  # config validation guarantees it
    async with sessions:
        await smtp.send_letters(
            sender.smtp,
            login=credentials(sender, state_dir),
            letters=letters,
            ssl_context=client_context(sender.ca_files),
            sent=sent,
        )


class Batch:
    """A rendezvous of `size` probes; the last to arrive starts the session."""

    def __init__(self, size: int, send: Deliver, spawn: Spawn) -> None:
        self._left = size
        self._send = send
        self._spawn = spawn
        self._letters: list[smtp.Letter] = []
        self._outcomes: list[asyncio.Future[SendOutcome]] = []

    def seats(self) -> list[Seat]:
        if self._left == 1:  # a session of its own, as ever: no rendezvous, no extra task
            return [Seat.alone(self._send)]
        return [Seat(self._join, self._arrived) for _ in range(self._left)]

    async def _join(self, letter: smtp.Letter) -> SendOutcome:
        future: asyncio.Future[SendOutcome] = asyncio.get_running_loop().create_future()
        self._letters.append(letter)
        self._outcomes.append(future)
        self._arrived()
        return await future

    def _arrived(self) -> None:
        self._left -= 1
        if self._left == 0 and self._letters:
            self._spawn(self._run())

    async def _run(self) -> None:
        # Spawned from the last probe to arrive: its log context is not the session's.
        structlog.contextvars.unbind_contextvars("recipient", "token", "probe_id")
        try:
            await self._send(self._letters, self._tell)
        except BaseException as exc:
            # A probe must never wait for ever: cancelled with the session, or told the bug.
            for future in self._outcomes:
                if not future.done():
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
            raise
        for future in self._outcomes:
            if not future.done():  # send_letters promises one outcome per letter: a bug
                future.set_exception(RuntimeError("the SMTP session gave this letter no outcome"))

    def _tell(self, index: int, outcome: SendOutcome) -> None:
        future = self._outcomes[index]
        if not future.done():  # its probe may have been cancelled meanwhile
            future.set_result(outcome)


class Seat:
    """One probe's place in a batch: taken once with its letter, or given up."""

    def __init__(
        self, join: Callable[[smtp.Letter], Awaitable[SendOutcome]], leave: Callable[[], None]
    ) -> None:
        self._join: Callable[[smtp.Letter], Awaitable[SendOutcome]] | None = join
        self._leave = leave

    @classmethod
    def alone(cls, send: Deliver) -> Seat:
        """A seat of its own: the letter goes over a session of its own."""

        async def join(letter: smtp.Letter) -> SendOutcome:
            outcomes: list[SendOutcome] = []
            await send([letter], lambda _, outcome: outcomes.append(outcome))
            return outcomes[0]

        return cls(join, lambda: None)

    async def send(self, letter: smtp.Letter) -> SendOutcome:
        assert self._join is not None, "a seat is taken once"
        join, self._join = self._join, None
        return await join(letter)

    def give_up(self) -> None:
        """Safe to call at any time: does nothing once the seat was taken."""
        if self._join is not None:
            self._join = None
            self._leave()


async def seated(seat: Seat, job: Awaitable[_T]) -> _T:
    """Runs a probe holding `seat`; one that ends without sending (slot already claimed,
    store trouble, a bug) gives it up, so the others go without it."""
    try:
        return await job
    finally:
        seat.give_up()


def letter_for(
    route: Route, planned: PlannedProbe, sender: Account, recipient: Account, token: Token
) -> smtp.Letter:
    """The probe's canary: the route's own message (#16), else the plain canary; raises
    `MessageFileError` when the route's message file changed for the worse since load."""
    message = real_message.wire(
        route,
        token=token,
        sender=sender.email,
        sender_name=sender.name,
        recipient=recipient.email,
        recipient_name=recipient.name,
        message_id=planned.message_id,
    )
    return smtp.Letter(message, sender.email, recipient.email)
