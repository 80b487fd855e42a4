"""The decisions of `mailcanary diagnose`, kept pure: what to suggest, what a step's outcome
means, and how the facts are worded. The steps themselves run in monitor/diagnose/run.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from monitor.core.certificate import Certificate
from monitor.core.failures import classify_error
from monitor.core.folders import Folder
from monitor.core.models import Failure, Phase, Security

EXPIRY_WARNING_DAYS = 14
MODERN_TLS = frozenset({"TLSv1.2", "TLSv1.3"})
TEST_HEADER = "X-Mailcanary-Diagnose"
SPECIAL_USE = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
OFFERS = {Security.TLS: "implicit TLS", Security.STARTTLS: "STARTTLS"}


def suggest(
    configured: tuple[int, Security], observed: Mapping[int, Security | None]
) -> str | None:
    """What to change when the configured port/security does not fit what the ports speak.

    `observed`: each port that accepted TCP → what it speaks (TLS = implicit TLS, STARTTLS =
    plain greeting offering STARTTLS, NONE = plain only, None = could not be told); ports that
    did not answer are absent. None when the configuration fits or nothing better exists.
    """
    port, security = configured
    if port in observed:
        speaks = observed[port]
        if speaks is None or speaks is security:
            return None
        if speaks is not Security.NONE:
            return (
                f"{port} offers {OFFERS[speaks]}; you asked for {security.value} on {port}"
                f' — use security = "{speaks.value}"'
            )
        why = f"{port} offers no encryption"
    else:
        why = f"{port} does not answer"
    others = [(p, s) for p, s in observed.items() if p != port and s in OFFERS]
    if not others:
        return None
    # Submission ports before 25 (often blocked, meant for relaying); the asked-for style first.
    other, offers = min(others, key=lambda o: (o[0] == 25, o[1] is not security, o[1], o[0]))
    return (
        f'{why}; {other} offers {OFFERS[offers]} — use port = {other}, security = "{offers.value}"'
    )


def works_as_configured(security: Security, speaks: Security | None) -> bool:
    # Plain text also works on a port that merely offers STARTTLS.
    return speaks is security or (security is Security.NONE and speaks is Security.STARTTLS)


@dataclass
class Step:
    service: str  # "smtp" | "imap"
    step: str
    target: str
    ok: bool | None  # None: skipped
    detail: str
    required: bool = True  # on the configured endpoint: a ✗ means probes cannot work
    failure: Failure | None = None
    remedy: str | None = None
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def exit_code(steps: Sequence[Step]) -> int:
    """0 every step ✓ (or skipped); 1 only optional steps ✗; 2 a required step ✗."""
    failed = [s for s in steps if s.ok is False]
    return 2 if any(s.required for s in failed) else 1 if failed else 0


@dataclass
class Diagnosis:
    account: str
    steps: list[Step]
    suggestions: list[str]

    @property
    def exit_code(self) -> int:
        return exit_code(self.steps)


# ---------------------------------------------------------------- what a port offers


def auth_mechanisms(capabilities: Sequence[str]) -> tuple[str, ...]:
    """From EHLO lines ("AUTH PLAIN LOGIN", old "AUTH=LOGIN") or IMAP atoms ("AUTH=PLAIN")."""
    found: list[str] = []
    for capability in capabilities:
        head, _, rest = capability.replace("=", " ", 1).partition(" ")
        if head.upper() == "AUTH":
            found += rest.upper().split()
    return tuple(dict.fromkeys(found))


def size_limit(capabilities: Sequence[str]) -> int | None:
    for words in (c.split() for c in capabilities):
        if words[:1] == ["SIZE"] and words[1:2] and words[1].isdigit():
            return int(words[1])
    return None


def extensions(capabilities: Sequence[str]) -> tuple[str, ...]:
    """Keywords besides AUTH and SIZE (PIPELINING, 8BITMIME, SMTPUTF8, IDLE…)."""
    words = (c.split()[0].upper() for c in capabilities if c.split())
    return tuple(w for w in words if w not in ("AUTH", "SIZE") and not w.startswith("AUTH="))


def offers_text(speaks: Security | None, tls_version: str | None, caps: Sequence[str]) -> str:
    styles = {
        Security.TLS: f"implicit TLS ({tls_version})",
        Security.STARTTLS: f"plain, STARTTLS ({tls_version or 'not completed'})",
        Security.NONE: "plain, no STARTTLS",
    }
    parts = [styles[speaks]] if speaks else []
    if caps:
        mechanisms = auth_mechanisms(caps)
        parts.append("AUTH " + " ".join(mechanisms) if mechanisms else "no AUTH offered")
    size = size_limit(caps)
    return "; ".join(
        p for p in [*parts, f"SIZE {size}" if size else "", " ".join(extensions(caps))] if p
    )


def mismatch(security: Security, speaks: Security | None, target: str) -> Failure:
    """Why the configured security cannot work on a port that speaks `speaks`."""
    if security is Security.TLS:
        message = f"you asked for tls; {target} answers in plain text"
        return classify_error(Phase.TLS, "tls_failed", message)
    if speaks is Security.TLS:
        message = f"you asked for {security.value}; {target} expects a TLS handshake first"
        return classify_error(Phase.GREETING, "protocol_error", message)
    message = f"you asked for starttls; {target} does not offer it"
    return classify_error(Phase.TLS, "starttls_unavailable", message)


# ---------------------------------------------------------------- certificates


@dataclass(frozen=True, slots=True)
class Finding:
    ok: bool
    detail: str
    failure: Failure | None = None
    remedy: str | None = None
    required: bool = True  # False: worth a ✗, but the account still works


def judge_certificate(c: Certificate, host: str, phase: Phase) -> Finding:
    facts = f"expires {c.not_after:%Y-%m-%d} ({c.days_left} days left)"
    problems, remedies = [], []
    if c.expired:
        problems.append(f"expired {-c.days_left} days ago")
        remedies.append("The server's operator must renew the certificate.")
    elif not c.trusted:
        problems.append(f"untrusted: {c.trust_error}")
        remedies.append(
            'If the server uses a private CA, add it with ca_file = "/path/ca.pem" (account or '
            "[monitor]); otherwise the server sends an incomplete chain (often a missing "
            "intermediate) and its operator must fix it."
        )
    if not c.name_matches:
        names = ", ".join(c.names) or "none"
        problems.append(f"not valid for {host}")
        remedies.append(
            f"Use a host name the certificate carries ({names}), or the operator must add {host}."
        )
    if problems:
        failure = classify_error(phase, "tls_failed", "certificate " + "; ".join(problems))
        return Finding(False, f"{failure.message}; {facts}", failure, " ".join(remedies))
    if c.days_left < EXPIRY_WARNING_DAYS:
        renew = "Renew it soon; check that automated renewal still runs."
        return Finding(False, f"expires in {c.days_left} days", None, renew, required=False)
    return Finding(True, f"trusted, valid for {host}; {facts}")


def certificate_notes(c: Certificate) -> list[str]:
    return [f"subject {c.subject or '(empty)'}", f"names {', '.join(c.names) or '(none)'}",
            f"issuer {c.issuer}"]  # fmt: skip


# ---------------------------------------------------------------- folders and the test message


def folder_line(folder: Folder, spam: Folder | None) -> str:
    roles = [f for f in SPECIAL_USE if f in folder.flags]
    roles = ["inbox", *roles] if folder.name.upper() == "INBOX" else roles
    return "  ".join([folder.name, *roles, *(["← taken as spam"] if folder == spam else [])])


def folder_facts(folder: Folder, spam: Folder | None) -> dict[str, Any]:
    special_use = [f for f in SPECIAL_USE if f in folder.flags]
    return {"name": folder.name, "raw": folder.raw, "flags": sorted(folder.flags),
            "special_use": special_use, "spam": folder == spam}  # fmt: skip


def self_test_message(address: str, token: str, now: datetime) -> bytes:
    """A message to the account itself; `TEST_HEADER` carries the token to find it by."""
    message = EmailMessage()
    message["From"] = message["To"] = address
    message["Subject"] = f"mailcanary diagnose test {token}"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid("diagnose", domain=address.rpartition("@")[2])
    message[TEST_HEADER] = token
    message.set_content("A test message from `mailcanary diagnose --send-test`; safe to delete.\n")
    return message.as_bytes()
