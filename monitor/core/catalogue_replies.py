"""The catalogue's generic reply rows: SMTP basic and enhanced codes, by phase.

Codes and their standard meanings: RFC 5321 §4.2, RFC 3463, RFC 4954 §6, RFC 7372 and the IANA
enhanced status code registry. The wording is ours. See `monitor.core.rules` for matching.
"""

from __future__ import annotations

from monitor.core.models import Phase
from monitor.core.rules import Entry, entry

_RETRY = "mailcanary retries at the next interval; alert only if it keeps happening."
_AUTH_DNS = (
    "Publish SPF for the sending domain, sign with DKIM, publish DMARC (p=none at least) with "
    "the From domain aligned; check that the sending IP has a PTR record."
)

REPLY_ENTRIES: tuple[Entry, ...] = (
    # ------------------------------------------------------------ greeting and STARTTLS
    entry(
        "421 instead of a greeting: the server is busy, shutting down, or limiting how often "
        "this address may connect.",
        _RETRY,
        kind="greeting_refused",
        code=421,
    ),
    entry(
        "554 instead of a greeting: the server will not talk to this client at all, most often "
        "because the sending IP is on a DNS blocklist or has no proper reverse DNS.",
        "Look the sending IP up on the common blocklists (Spamhaus, Barracuda…) and follow "
        "their delisting steps; make sure the IP has a PTR record matching its host name.",
        kind="greeting_refused",
        code=554,
    ),
    entry(
        "The server named a blocklist: the sending IP or domain is listed on it.",
        "Follow the blocklist's delisting procedure (the reply usually links to it) and find "
        "out what got the IP listed (compromised account, open relay, shared IP).",
        text=r"block ?list|black ?list|spamhaus|\bdnsbl\b|\brbl\b|barracuda|spamcop",
    ),
    entry(
        "The server's EHLO reply did not offer STARTTLS, so mailcanary stopped before sending "
        "the password or the message in clear text. Either the server lacks TLS on this port "
        "or something between here and the server strips the offer.",
        "Check that port and security match the provider (587 starttls, 465 tls); if they do, "
        "look for a firewall or antivirus that intercepts SMTP.",
        kind="starttls_unavailable",
        text=r"does not offer STARTTLS",
    ),
    entry(
        "454 to STARTTLS: the server offers TLS but cannot start it right now (its certificate "
        "or key may be unreadable).",
        "Retry later; if it persists the server's TLS configuration needs fixing.",
        kind="starttls_unavailable",
        code=454,
    ),
    # ------------------------------------------------------------ AUTH (RFC 4954 §6)
    entry(
        "535: the user name or password is wrong, or this login may not be used by mail "
        "programs (many providers refuse the normal password and want an app password).",
        "Check the user name (often the full address) and password; where the account has "
        "two-step verification, create an app password, or use OAuth2 where basic login is off.",
        kind="auth_failed",
        code=535,
    ),
    entry(
        "The server says the credentials are invalid (wrong user name or password, or a "
        "password mail programs may not use).",
        "Check the user name (often the full address) and password; with two-step "
        "verification on, create an app password for mailcanary.",
        enhanced="x.7.8",
    ),
    entry(
        "The login mechanism is too weak for this server, or the provider wants a "
        "special password (an app password) or a sign-in from a browser first.",
        "Create an app password for mailcanary, or sign in once in a browser to clear a "
        "security hold; use OAuth2 where the provider requires it.",
        kind="auth_failed",
        code=534,
    ),
    entry(
        "The authentication mechanism is too weak for this server.",
        "Use TLS and an app password or OAuth2.",
        enhanced="x.7.9",
    ),
    entry(
        "454 during login: a temporary authentication failure; the server's password "
        "backend is probably unreachable or overloaded.",
        _RETRY,
        kind="auth_failed",
        code=454,
    ),
    entry(
        "This login mechanism needs an encrypted connection.",
        "Use security = starttls or tls for this account.",
        kind="auth_failed",
        code=538,
    ),
    entry(
        "The server requires encryption for this.",
        "Use security = starttls or tls for this account.",
        enhanced="x.7.11",
    ),
    entry(
        "530 during login: the server wants something else first, usually STARTTLS.",
        "Use security = starttls (587) or tls (465).",
        kind="auth_failed",
        code=530,
    ),
    entry(
        "530: the server requires the client to authenticate before MAIL FROM.",
        "Configure the account's password; on a relay that takes mail without login, check "
        "that this client's IP is allowed.",
        kind="auth_required",
        code=530,
    ),
    entry(
        "The server wants STARTTLS before anything else.",
        "Use security = starttls (587) or tls (465).",
        kind=("auth_required", "auth_failed"),
        text=r"STARTTLS first|must issue a STARTTLS",
    ),
    # ------------------------------------------------------------ MAIL FROM
    entry(
        "553: the sender address is not allowed, usually because it does not belong to the "
        "account that logged in.",
        "Send as the account's own address (the From of the route's sending account), or give "
        "the login send-as rights for it.",
        kind="sender_refused",
        code=553,
    ),
    entry(
        "This login may not send as that address.",
        "Use the account's own address as sender, or grant the login send-as rights.",
        kind="sender_refused",
        enhanced="x.7.1",
    ),
    entry(
        "The sender's domain does not resolve, so the server will not accept mail from "
        "it (replies could not be delivered).",
        "Check the sender domain's DNS (A or MX records).",
        enhanced="x.1.8",
    ),
    entry(
        "The sender address is malformed.",
        "Fix the sending account's address.",
        enhanced="x.1.7",
    ),
    # ------------------------------------------------------------ RCPT TO
    entry(
        "The recipient mailbox does not exist on that server.",
        "Fix the recipient address, or create the mailbox.",
        enhanced="x.1.1",
    ),
    entry(
        "The recipient's domain is not handled by that server (or does not exist).",
        "Check the recipient's domain and its MX records.",
        enhanced="x.1.2",
    ),
    entry(
        "The recipient mailbox exists but is disabled.",
        "Ask the recipient's administrator to re-enable it, or change the route's recipient.",
        enhanced="x.2.1",
    ),
    entry(
        "The recipient's mailbox is full.",
        "Empty the seed mailbox (mailcanary deletes canaries only with cleanup on) or raise "
        "its quota.",
        enhanced="x.2.2",
    ),
    entry(
        "The recipient server is greylisting: it defers mail from unknown senders once and "
        "accepts the retry.",
        "Nothing to fix; a real sender's retry gets through. If canaries are always "
        "greylisted, ask for the sending server to be whitelisted.",
        kind="deferred",
        text=r"greylist|graylist",
    ),
    entry(
        "450: the mailbox is unavailable for now (busy, locked, or greylisting).",
        _RETRY,
        kind="deferred",
        code=450,
    ),
    entry(
        "451: the server hit a local error while processing (its disk, a lookup table, a "
        "filter) or is greylisting.",
        _RETRY,
        kind="deferred",
        code=451,
    ),
    entry(
        "452: the server is short of storage or got too many recipients.",
        "Retry later; send to fewer recipients per message.",
        kind="deferred",
        code=452,
    ),
    entry(
        "Too many recipients for one message.",
        "Send to fewer recipients per message (mailcanary sends one per message).",
        enhanced="x.5.3",
    ),
    entry(
        "552 at RCPT TO: by RFC 5321 this means too many recipients, a temporary condition.",
        _RETRY,
        kind="deferred",
        phase=Phase.RCPT_TO,
        code=552,
    ),
    entry(
        "421 in the middle of the transaction: the server is closing the connection (load, "
        "rate limit, shutdown).",
        _RETRY,
        kind="deferred",
        code=421,
    ),
    entry(
        "Relaying denied: the server does not deliver for this recipient's domain unless the "
        "client logs in.",
        "Give the sending account a password (SMTP AUTH), or use the recipient's own MX.",
        text=r"relay(ing)? (access )?denied|not permitted to relay|unable to relay",
    ),
    entry(
        "550 at RCPT TO: the recipient mailbox is unavailable, or the server's policy refuses "
        "it for this sender.",
        "Read the server's text: fix the address if the mailbox does not exist, otherwise "
        "check the sender's reputation and authentication.",
        kind="rejected",
        phase=Phase.RCPT_TO,
        code=550,
    ),
    entry(
        "Delivery not authorized; the server's policy refused this sender, client or message.",
        "Read the server's text for the policy hit; check SPF/DKIM/DMARC and the sending IP's "
        "reputation.",
        enhanced="x.7.1",
        phase=(Phase.RCPT_TO, Phase.DATA),
    ),
    # ------------------------------------------------------------ DATA
    entry(
        "552 at DATA: the message is larger than the server accepts, or the mailbox has no "
        "room for it.",
        "Check the server's SIZE limit and the mailbox quota.",
        kind="message_refused",
        code=552,
    ),
    entry(
        "The message is too big for the server or the mailbox.",
        "Check the SIZE limit and quota.",
        enhanced=("x.3.4", "x.2.3"),
    ),
    entry(
        "554 at DATA: the server refused the message after reading it, usually its spam or "
        "virus filter or a content policy.",
        "Read the server's text; check the sending domain's authentication and the sending IP's "
        "reputation, and what in the canary could look like spam.",
        kind="message_refused",
        code=554,
    ),
    entry(
        "The server could not handle the message's format or content.",
        "Check the server's text; the canary is plain text, so a proxy may have altered it.",
        enhanced=("x.6.0", "x.6.1", "x.6.3"),
    ),
    entry(
        "The receiving system is not accepting messages (full disk, misconfiguration, "
        "shutting down).",
        "A problem at the receiving server: " + _RETRY,
        enhanced=("x.3.0", "x.3.1", "x.3.2", "x.3.5"),
    ),
    # ------------------------------------------------------------ sender authentication codes
    entry(
        "No acceptable DKIM signature (none, or not aligned with the author's domain).",
        "Sign outgoing mail with DKIM using a key under the From domain.",
        enhanced=("x.7.20", "x.7.21", "x.7.22"),
    ),
    entry(
        "The sender's SPF check failed or could not be evaluated.",
        "Add the sending IP to the SPF record of the envelope domain; fix SPF syntax errors.",
        enhanced=("x.7.23", "x.7.24"),
    ),
    entry(
        "The sending IP's reverse DNS (PTR) is missing or does not match forward DNS.",
        "Ask the IP's owner to set a PTR record whose host name resolves back to the IP.",
        enhanced="x.7.25",
    ),
    entry(
        "Several sender authentication checks failed together (SPF, DKIM, DMARC).",
        _AUTH_DNS,
        enhanced="x.7.26",
    ),
    entry(
        "The sender's domain publishes a null MX, declaring it sends no mail.",
        "Send from a domain that accepts mail, or remove the null MX record.",
        enhanced="x.7.27",
    ),
)
