"""Is it the content or the sender? A plain canary route and a real-message route from the same
account to the same mailbox tell the two apart: filters judge the sender (its reputation,
SPF/DKIM/DMARC) for both, and the content only for the real message.

Pure: spam shares in, a judgement out; the weekly report and the status page word it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from monitor.config.schema import Route

# "Mostly spam" and "rarely spam": a share between the two says nothing either way.
MOSTLY = 0.5
RARELY = 0.1


@dataclass(frozen=True, slots=True)
class Pairing:
    """Two routes from one account to one mailbox: the plain canary and the user's message."""

    sender: str
    recipient: str
    plain_route: str
    message_route: str


def pairings(routes: Iterable[Route]) -> list[Pairing]:
    routes = list(routes)
    plain = {
        (r.sender, to): r.name
        for r in routes
        if r.message is None and r.message_template is None
        for to in r.recipients
    }
    return [
        Pairing(r.sender, to, plain[(r.sender, to)], r.name)
        for r in routes
        if r.message is not None or r.message_template is not None
        for to in r.recipients
        if (r.sender, to) in plain
    ]


def judge(plain_spam: float | None, message_spam: float | None) -> str | None:
    """ "content" when the message goes to spam and the plain canary does not, "sender" when
    both do; None when nothing can be said (no data, both fine, or shares in between)."""
    if plain_spam is None or message_spam is None or message_spam < MOSTLY:
        return None
    if plain_spam <= RARELY:
        return "content"
    if plain_spam >= MOSTLY:
        return "sender"
    return None


def sentence(pairing: Pairing, verdict: str) -> str:
    p = pairing
    if verdict == "content":
        return (
            f"It is the content: {p.message_route} (your message) from {p.sender} goes to spam "
            f"at {p.recipient}, while the plain canary ({p.plain_route}) reaches the inbox"
        )
    return (
        f"It is the sender: even the plain canary ({p.plain_route}) from {p.sender} goes to "
        f"spam at {p.recipient}, like {p.message_route} (your message)"
    )


REMEDY = {
    "content": "Read the receiver's content-filter rules on those canaries (history, the probe "
    "page) and `mailcanary lint-message` the file: add a text part, fewer images, a "
    "List-Unsubscribe header, fewer spammy phrases.",
    "sender": "Fix the sender before the message: SPF, DKIM and DMARC alignment "
    "(`mailcanary dns`), the sending IP's reputation and blocklists.",
}
