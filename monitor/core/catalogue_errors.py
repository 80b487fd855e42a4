"""The catalogue's rows for failures that come without an SMTP reply: the detail of TLS
handshakes, timeouts by phase, DNS, refused and lost connections, and the IMAP side.

The detail is read from the failure's message, which the adapters fill in from the library's
error (OpenSSL's verify message, the resolver's text). See `monitor.core.rules` for matching.
"""

from __future__ import annotations

from monitor.core.models import Phase
from monitor.core.rules import Entry, entry

ERROR_ENTRIES: tuple[Entry, ...] = (
    # ------------------------------------------------------------ TLS detail
    entry(
        "The server's certificate has expired.",
        "Renew the server's certificate (and the automatic renewal that should have done it); "
        "until then the account cannot be used safely.",
        kind="tls_failed",
        text=r"expired",
    ),
    entry(
        "The server's certificate is not valid yet: it was issued for the future or one of the "
        "clocks is wrong.",
        "Check this machine's clock and the certificate's start date.",
        kind="tls_failed",
        text=r"not yet valid",
    ),
    entry(
        "The server's certificate is for another host name than the one configured.",
        "Use the host name the certificate names (the provider's documented server name), or "
        "fix the server's certificate.",
        kind="tls_failed",
        text=r"hostname mismatch|ip address mismatch|doesn't match|not valid for",
    ),
    entry(
        "The server's certificate is not signed by a CA this machine trusts (self-signed, a "
        "private CA, or a missing intermediate certificate).",
        "If the server is yours, serve the full chain; for a private CA, add it to the "
        "account's `ca_file`. Do not turn verification off.",
        kind="tls_failed",
        text=r"local issuer|self[- ]signed|unable to verify|unable to get issuer|chain",
    ),
    entry(
        "The port does not speak TLS from the first byte: implicit TLS was configured on a "
        "port that expects plain text or STARTTLS.",
        'Use security = "starttls" for port 587 (or 25) and "tls" for 465.',
        kind="tls_failed",
        text=r"wrong[ _]version[ _]number|unknown[ _]protocol|packet[ _]length|record[ _]layer",
    ),
    entry(
        "Client and server share no TLS version or cipher.",
        "The server may only speak outdated TLS; ask its operator to enable TLS 1.2 or newer.",
        kind="tls_failed",
        text=(
            r"unsupported[ _]protocol|no[ _]protocols[ _]available|handshake[ _]failure"
            r"|protocol[ _]version|version[ _]too[ _]low"
        ),
    ),
    entry(
        "The IMAP server refused STARTTLS.",
        "Use port 993 with security = tls, or fix the server's TLS setup.",
        kind="tls_failed",
        text=r"STARTTLS refused",
    ),
    # ------------------------------------------------------------ timeouts, DNS, connections
    entry(
        "The TCP connection got no answer at all: a firewall is dropping the packets or the "
        "host is down (outgoing port 25 is blocked by many ISPs and clouds).",
        "Check the port from this machine (e.g. `nc -vz host port`) and the firewalls on the way.",
        kind="timeout",
        phase=(Phase.CONNECT, Phase.IMAP_CONNECT),
    ),
    entry(
        "The connection opened but the server never greeted: it may be waiting for a TLS "
        "handshake (a TLS-only port used as plain or STARTTLS), or it is overloaded or "
        "deliberately slow to greet (tarpitting).",
        'If the port is 465, use security = "tls"; otherwise check the server\'s load.',
        kind="timeout",
        phase=Phase.GREETING,
    ),
    entry(
        "The TLS handshake did not finish in time: the port may not speak TLS (implicit TLS "
        "aimed at a plain port), or the server stalled.",
        'Use security = "starttls" for 587/25 and "tls" for 465; then check the server.',
        kind="timeout",
        phase=(Phase.TLS, Phase.IMAP_TLS),
    ),
    entry(
        "The server took the message but did not confirm it in time; it may still deliver it.",
        "Check the server's content filters (slow scanning); a canary may arrive anyway.",
        kind="timeout",
        phase=Phase.DATA,
    ),
    entry(
        "The host name does not exist in DNS.",
        "Check the host name for typos.",
        kind="dns_failed",
        text=r"not known|no address associated|nxdomain|does not exist",
    ),
    entry(
        "The DNS resolver could not answer (temporary failure).",
        "Check this machine's resolver (/etc/resolv.conf) and its network.",
        kind="dns_failed",
        text=r"temporary failure|try again",
    ),
    entry(
        "The host answered but refused the connection: nothing listens on that port.",
        "Check the port number and that the mail service runs on the host.",
        kind="connect_failed",
        text=r"refused",
    ),
    entry(
        "There is no network route to the host.",
        "Check this machine's network and routes (IPv6 without a working route is common).",
        kind="connect_failed",
        text=r"unreachable|no route",
    ),
    entry(
        "The server closed the connection before greeting: it drops this client (rate limit, "
        "IP ban, connection limit) or the port speaks another protocol.",
        "Check the port and security; look for fail2ban-style bans of this IP.",
        kind="connection_lost",
        phase=Phase.GREETING,
    ),
    entry(
        "The connection broke while the message was being handed over; the server may or may "
        "not have accepted it.",
        "Usually passing; a canary may still arrive. If it repeats, check size limits and "
        "filters at the server.",
        kind="connection_lost",
        phase=Phase.DATA,
    ),
    # ------------------------------------------------------------ IMAP
    entry(
        "The IMAP server refused the login, so mailcanary cannot look for canaries in this "
        "mailbox.",
        "Check the user name and password (an app password where required) and that IMAP "
        "access is enabled for the account (several providers turn it off by default).",
        kind="auth_failed",
        phase=Phase.IMAP_AUTH,
    ),
    entry(
        "The IMAP server does not allow a plain-text login on this connection.",
        "Use security = tls (993) or starttls (143).",
        kind="auth_failed",
        phase=Phase.IMAP_AUTH,
        text=r"disables LOGIN|LOGINDISABLED|PRIVACYREQUIRED",
    ),
    entry(
        "The folder does not exist on the IMAP server.",
        "Check the configured folder name (spam_folder) against the server's folder list.",
        kind="select_failed",
        text=r"NONEXISTENT|doesn't exist|does not exist|no such",
    ),
)
