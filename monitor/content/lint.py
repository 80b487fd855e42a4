"""`mailcanary lint-message`: what a content filter will hold against a message, before sending.

The structural checks are pure and always run: unusable file (oversized, not a message, broken
MIME), no text part, image-only HTML, bulk mail without List-Unsubscribe, From not the sending
account's, a DKIM signature for another domain, no Subject. SpamAssassin's own score is added
by the command when a local SpamAssassin is installed (monitor.adapters.spamassassin).

Exit codes (the command's): 0 nothing found; 1 warnings only (it can be sent, filters may
count them against it); 65 (EX_DATAERR) an error: the file cannot be sent as it is, or the
local SpamAssassin calls it spam; 66 (EX_NOINPUT) the file cannot be read; 78 (EX_CONFIG) the
config needed for --account is unusable, as in check-config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses, make_msgid
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from monitor.content.message import (
    MAX_BYTES,
    MessageFileError,
    OversizedError,
    from_problem,
    parse,
    read_file,
    stamp,
    structure_problem,
)
from monitor.content.rules import explain
from monitor.content.spamscore import SpamScore, brief, score_json

EX_OK, EX_WARNINGS, EX_DATAERR = 0, 1, 65
IMAGE_ONLY_WORDS = 400  # bytes of visible words; SpamAssassin's HTML_IMAGE_ONLY_* go up to 32k
_BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})
_DKIM_D = re.compile(r"(?:^|;)\s*d\s*=\s*([^;\s]+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Finding:
    code: str  # MC_* (see monitor.content.rules)
    severity: str  # "error" or "warning"
    text: str

    @property
    def explanation(self) -> str | None:
        return explain(self.code)


def structural(
    raw: bytes, *, account_email: str | None = None, bulk: bool | None = None
) -> list[Finding]:
    """The offline checks. `bulk`: the sender says whether this is bulk mail; None guesses
    from the message (Precedence, List-Id, an unsubscribe link)."""
    if len(raw) > MAX_BYTES:
        size = len(raw) / 1048576
        return [Finding("MC_OVERSIZED", "error", f"{size:.1f} MB, over the 10 MB limit")]
    problem = structure_problem(raw)
    if problem is not None:
        return [Finding("MC_BROKEN_MIME", "error", problem)]
    message = parse(raw)
    found: list[Finding] = []
    if account_email is not None and (why := from_problem(raw, account_email)) is not None:
        found.append(Finding("MC_FROM_NOT_ACCOUNT", "error", why))
    found += _dkim_alignment(message)
    if not str(message.get("Subject", "")).strip():
        found.append(Finding("MC_NO_SUBJECT", "warning", "no Subject"))
    html = _part_text(message, "html")
    if _part_text(message, "plain") is None:
        found.append(Finding("MC_NO_TEXT_PART", "warning", "no text/plain part"))
    if html is not None:
        reader = _HtmlReader()
        reader.feed(html)
        words = len(" ".join(reader.words).encode())
        if reader.images and words < IMAGE_ONLY_WORDS:
            found.append(
                Finding(
                    "MC_IMAGE_ONLY_HTML",
                    "warning",
                    f"HTML has {reader.images} image(s) and only {words} bytes of words",
                )
            )
    if _is_bulk(message, html) if bulk is None else bulk:
        found += _unsubscribe(message)
    return found


def _part_text(message: EmailMessage, subtype: str) -> str | None:
    for part in message.walk():
        if part.get_content_type() == f"text/{subtype}" and not part.is_attachment():
            try:
                return str(part.get_content())
            except (LookupError, ValueError):  # unknown charset, bad encoding: still a part
                return ""
    return None


class _HtmlReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.words: list[str] = []
        self.images = 0
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images += 1
        elif tag in ("script", "style", "head"):
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.words += data.split()


def _is_bulk(message: EmailMessage, html: str | None) -> bool:
    if str(message.get("Precedence", "")).strip().lower() in _BULK_PRECEDENCE:
        return True
    if message.get("List-Id") or message.get("List-Unsubscribe"):
        return True
    text = (html or "") + (_part_text(message, "plain") or "")
    return "unsubscribe" in text.lower()


def _unsubscribe(message: EmailMessage) -> list[Finding]:
    if not message.get("List-Unsubscribe"):
        return [Finding("MC_NO_LIST_UNSUBSCRIBE", "warning", "bulk mail without List-Unsubscribe")]
    post = str(message.get("List-Unsubscribe-Post", ""))
    if "list-unsubscribe=one-click" not in post.lower():
        return [
            Finding(
                "MC_NO_LIST_UNSUBSCRIBE",
                "warning",
                "List-Unsubscribe without List-Unsubscribe-Post: List-Unsubscribe=One-Click"
                " (RFC 8058), which Gmail and Yahoo ask of bulk senders",
            )
        ]
    return []


def _aligned(signer: str, author: str) -> bool:
    """Relaxed alignment, approximated: the same domain or one inside the other."""
    return signer == author or author.endswith("." + signer) or signer.endswith("." + author)


def _dkim_alignment(message: EmailMessage) -> list[Finding]:
    signatures = [str(v) for v in message.get_all("DKIM-Signature") or ()]
    if not signatures:
        return []
    authors = [a for _, a in getaddresses([str(v) for v in message.get_all("From") or ()]) if a]
    author = authors[0].rpartition("@")[2].lower() if authors else ""
    signers = [m.group(1).lower().rstrip(".") for s in signatures if (m := _DKIM_D.search(s))]
    if not author or any(_aligned(d, author) for d in signers):
        return []
    return [
        Finding(
            "MC_DKIM_NOT_ALIGNED",
            "warning",
            f"signed for {', '.join(signers) or 'no domain'}, From is {author}: DMARC needs "
            "the signature's domain to match From",
        )
    ]


def exit_code(findings: list[Finding], spam: SpamScore | None) -> int:
    if any(f.severity == "error" for f in findings) or (spam is not None and spam.spam):
        return EX_DATAERR
    return EX_WARNINGS if findings else EX_OK


EX_NOINPUT = 66


def lint_file(
    path: Path,
    *,
    account_email: str | None = None,
    bulk: bool | None = None,
    spamd: tuple[str, int] | None = None,
    use_spamassassin: bool = True,
) -> tuple[list[str], dict[str, Any], int]:
    """(lines for people, one JSON object, exit code) for `mailcanary lint-message`."""
    from monitor.adapters.spamassassin import score  # the one part that runs a program

    try:
        raw = read_file(path)
    except OversizedError as exc:
        findings = [Finding("MC_OVERSIZED", "error", str(exc))]
    except MessageFileError as exc:
        return [f"{path}: {exc}"], {"file": str(path), "error": str(exc)}, EX_NOINPUT
    else:
        findings = structural(raw, account_email=account_email, bulk=bulk)
    opinion = None
    if use_spamassassin and not any(f.code in ("MC_OVERSIZED", "MC_BROKEN_MIME") for f in findings):
        # Scored as a probe would send it: a Date, Message-ID and To of its own.
        sendable = stamp(
            raw,
            recipient="seed@example.invalid",
            message_id=make_msgid(domain="mailcanary.invalid"),
            date=datetime.now(UTC),
            token="lint",
            route="lint",
        )
        opinion = score(sendable, spamd=spamd)
    spam = opinion.score if opinion else None
    code = exit_code(findings, spam)
    lines = [
        f"{path}: {f.severity} {f.code}: {f.text}"
        + (f" — {f.explanation}" if f.explanation else "")
        for f in findings
    ]
    if spam is not None:
        verdict = "spam" if spam.spam else "not spam"
        lines.append(f"{path}: {brief([spam], rules=5)} ({verdict}, {opinion.note})")
        lines += [
            f"    {r.name} {r.points:+g}: {r.explanation or r.detail}" for r in spam.top_rules(5)
        ]
    elif opinion is not None:
        lines.append(f"{path}: no SpamAssassin score: {opinion.note}")
    if not findings and (spam is None or not spam.spam):
        lines.append(f"{path}: ok, nothing a filter is known to hold against it")
    shape = {
        "file": str(path),
        "findings": [
            {"code": f.code, "severity": f.severity, "text": f.text, "explanation": f.explanation}
            for f in findings
        ],
        "spamassassin": score_json([spam])[0] if spam else None,
        "spamassassin_note": opinion.note if opinion else None,
        "exit": code,
    }
    return lines, shape, code
