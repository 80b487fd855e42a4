"""What a failure means and what to do about it: the reply catalogue.

`advise(failure)` looks the failure up in `entries()`, rules of `monitor.core.rules` (the
engine reply classification uses too). An entry lists conditions (failure kind, phase, basic
code, enhanced code, a pattern on the server's text); every condition it lists must hold. Of
the entries that match, the most specific wins: a text pattern (a provider's own wording)
outweighs an enhanced code, which outweighs a basic code, then the phase, then the kind;
equal weights go to the entry listed first. Each kind has a plain entry, so every
failure gets advice; `FALLBACK` covers a kind nobody has written advice for yet.

Enhanced codes are written "x.7.26" (any class: 4.7.26 and 5.7.26) or in full ("5.7.139").
The rows live in `catalogue_providers` (Gmail, Microsoft, Yahoo wording), `catalogue_replies`
(SMTP codes), `catalogue_errors` (failures without a reply) and here (one per kind).
Sources: RFC 5321, RFC 3463, RFC 4954, the IANA enhanced status code registry and the
providers' published error pages; the wording is ours.
"""

from __future__ import annotations

from functools import cache

from monitor.core.catalogue_errors import ERROR_ENTRIES
from monitor.core.catalogue_oauth import OAUTH_ENTRIES
from monitor.core.catalogue_providers import PROVIDER_ENTRIES
from monitor.core.catalogue_replies import REPLY_ENTRIES
from monitor.core.models import Advice, Failure
from monitor.core.rules import Entry, entry, most_specific

_RETRY = "mailcanary retries at the next interval; alert only if it keeps happening."

# Plain advice per failure kind: what is left when nothing more specific matches.
KIND_ENTRIES: tuple[Entry, ...] = (
    entry(
        "The server refused the connection instead of greeting (421: busy or closing; 554: "
        "it will not talk to this client, usually because the sending IP is on a blocklist).",
        "Check the sending IP against DNS blocklists and its reverse DNS (PTR); if the refusal "
        "persists, ask the provider whether the IP or network is blocked.",
        kind="greeting_refused",
    ),
    entry(
        "STARTTLS is required by this account's settings, but the server did not offer it or "
        "refused to start it; nothing was sent in clear text.",
        "Check the port and security setting (587 uses starttls, 465 uses tls); if the server "
        "should offer STARTTLS, its TLS setup is broken or something on the path strips it.",
        kind="starttls_unavailable",
    ),
    entry(
        "The server refused the login.",
        "Check the user name and password (an app password where the provider requires one); "
        "mailcanary does not retry a refused login in a loop.",
        kind="auth_failed",
    ),
    entry(
        "The server wants the client to log in (or to use TLS) before it accepts mail.",
        "Give the account a password and make sure the connection uses TLS or STARTTLS.",
        kind="auth_required",
    ),
    entry(
        "The server refused the EHLO/HELO greeting, often over the client's host name.",
        "Check the name mailcanary announces and whether the server accepts this client at all.",
        kind="ehlo_refused",
    ),
    entry(
        "The server deferred the message: a temporary refusal, the sender may try again later.",
        _RETRY,
        kind="deferred",
    ),
    entry(
        "The server will not accept mail from this sender address.",
        "Send from the address of the account you log in with (or one it may send as).",
        kind="sender_refused",
    ),
    entry(
        "The server refused the message itself after reading it (content, size or policy).",
        "Read the server's text for the reason; check the message size limit and content rules.",
        kind="message_refused",
    ),
    entry(
        "The server permanently refused the transaction.",
        "Read the server's text and enhanced code for the reason; fix it before the next probe.",
        kind="rejected",
    ),
    entry(
        "The conversation went out of step: the server said something the protocol does not "
        "allow at that point.",
        "Check that the port speaks the expected protocol (SMTP or IMAP, TLS or not); if it "
        "does, report the server's reply to its operator.",
        kind="protocol_error",
    ),
    entry(
        "The server's host name could not be resolved in DNS.",
        "Check the host name for typos and that this machine's DNS resolver works.",
        kind="dns_failed",
    ),
    entry(
        "Nothing accepted the TCP connection: the port is closed, filtered, or the host is down.",
        "Check the host and port, firewalls between here and the server (many networks block "
        "port 25), and whether the server is running.",
        kind="connect_failed",
    ),
    entry(
        "The server did not answer in time.",
        "Check the network path and the server's load; raise the endpoint's timeout only if "
        "the server is known to be slow.",
        kind="timeout",
    ),
    entry(
        "The TLS handshake failed, so the server's identity could not be established.",
        "Check the server's certificate (validity dates, host name, issuing CA) and the "
        "CA files configured for the account.",
        kind="tls_failed",
    ),
    entry(
        "A password is configured, but the server offers no login mechanism mailcanary can use "
        "on this connection (many servers offer AUTH only after STARTTLS).",
        "Use the submission port with TLS (587 starttls or 465 tls) and check the server's "
        "AUTH settings.",
        kind="auth_unavailable",
    ),
    entry(
        "The server closed the connection in the middle of the conversation.",
        "Usually passing (restarts, overload); if it repeats, check the server's logs and any "
        "rate limits or intrusion protection that may drop this client.",
        kind="connection_lost",
    ),
    entry(
        "The mail server said it is temporarily unavailable.",
        _RETRY,
        kind="server_unavailable",
    ),
    entry(
        "The IMAP server would not open a folder mailcanary watches.",
        "Check that the folder exists and the account may read it.",
        kind="select_failed",
    ),
    entry(
        "No spam folder could be found on the recipient's account, so a canary filed as spam "
        "would be missed.",
        "Set `spam_folder` for the account to the folder's name as the mail client shows it.",
        kind="spam_folder_missing",
    ),
    entry(
        "The watcher hit an internal error and restarted its session.",
        "Report it with the log around that time; the watcher retries on its own.",
        kind="watcher_error",
    ),
    entry(
        "The recipient's account is no longer in the configuration, so nobody can look for it.",
        "Nothing to fix unless the account was removed by mistake.",
        kind="account_removed",
    ),
    entry(
        "mailcanary stopped (a crash, a kill or a stop that outlasted drain_timeout) before "
        "this canary's hand-off was recorded, and it was not found by its deadline: whether "
        "it ever left is unknown. It counts towards no alert.",
        "Nothing to fix on the route; if it happens often, find out why the daemon stops.",
        kind="interrupted",
    ),
    entry(
        "The route's message file or template could not be used when the probe was sent "
        "(moved, changed or broken since the config was loaded); nothing was sent.",
        "Fix the file (`mailcanary check-config` names the problem) or reload the daemon.",
        kind="message_file",
    ),
)

FALLBACK = Advice(
    "mailcanary has no advice for this kind of failure yet.",
    "Read the failure message; report it so the catalogue can learn it.",
)


@cache
def entries() -> tuple[Entry, ...]:
    """The whole catalogue, provider entries first (they win ties)."""
    return (*OAUTH_ENTRIES, *PROVIDER_ENTRIES, *REPLY_ENTRIES, *ERROR_ENTRIES, *KIND_ENTRIES)


def _best(failure: Failure) -> Entry | None:
    return most_specific(
        entries(),
        kind=failure.kind,
        phase=failure.phase,
        code=failure.code,
        enhanced=failure.enhanced,
        text=failure.message,
    )


def advise(failure: Failure) -> Advice:
    """The catalogue's explanation and remedy for a failure; never raises."""
    best = _best(failure)
    return FALLBACK if best is None else best.says


def is_specific(failure: Failure) -> bool:
    """Whether the advice says more than the failure kind's plain entry does."""
    best = _best(failure)
    return best is not None and best not in KIND_ENTRIES
