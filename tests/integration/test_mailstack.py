"""The harness itself, seen only through stdlib smtplib/imaplib: what other tests rely on."""

from __future__ import annotations

import base64
import imaplib
import re
import shutil
import smtplib
import ssl
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from monitor.core.folders import quote_mailbox
from monitor.harness.mailstack import MailStack, MailStackError

pytestmark = pytest.mark.mailstack

_QUEUED = re.compile(rb"queued as ([0-9A-Za-z]+)")
_LIST = re.compile(rb'^\((?P<flags>[^)]*)\) (?:"[^"]*"|NIL) (?P<name>"(?:[^"\\]|\\.)*"|\S+)$')


def _tls(stack: MailStack) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(stack.ca_file))


def _message(stack: MailStack, to: str, subject: str) -> bytes:
    message = EmailMessage()
    message["From"] = stack.users["alice"].email
    message["To"] = to
    message["Subject"] = subject
    message.set_content("harness test\n")
    return message.as_bytes(policy=SMTP)


def _subject() -> str:
    return f"harness-{uuid.uuid4().hex}"


@contextmanager
def _submission(stack: MailStack) -> Iterator[smtplib.SMTP]:
    """Port 587 style: STARTTLS verified against the stack's CA, then AUTH as alice."""
    alice = stack.users["alice"]
    with smtplib.SMTP(stack.host, stack.submission_port, timeout=10) as smtp:
        smtp.starttls(context=_tls(stack))
        smtp.login(alice.email, alice.password)
        yield smtp


def _transaction(smtp: smtplib.SMTP, stack: MailStack, to: str, subject: str) -> str:
    """One accepted message; returns Postfix's queue id."""
    assert smtp.mail(stack.users["alice"].email)[0] == 250
    assert smtp.rcpt(to)[0] == 250
    code, reply = smtp.data(_message(stack, to, subject))
    assert code == 250, reply
    found = _QUEUED.search(reply)
    assert found, reply
    return found.group(1).decode()


@contextmanager
def _imaps(stack: MailStack, name: str) -> Iterator[imaplib.IMAP4_SSL]:
    user = stack.users[name]
    host, port = stack.imap_login_args(user)
    imap = imaplib.IMAP4_SSL(host, port, ssl_context=_tls(stack), timeout=10)
    try:
        imap.login(user.email, user.password)
        yield imap
    finally:
        imap.logout()


def _wait_for(stack: MailStack, name: str, folder: str, subject: str, timeout: float) -> float:
    """Poll `folder` until a message with `subject` is there; returns when (monotonic)."""
    with _imaps(stack, name) as imap:
        assert imap.select(quote_mailbox(folder), readonly=True)[0] == "OK"
        deadline = time.monotonic() + timeout
        while True:
            status, data = imap.uid("SEARCH", "HEADER", "Subject", subject)
            assert status == "OK"
            if data[0].split():
                return time.monotonic()
            assert time.monotonic() < deadline, f"{subject} not in {name}/{folder} in {timeout} s"
            imap.noop()
            time.sleep(0.02)


def _subjects(stack: MailStack, name: str, folder: str) -> list[str]:
    return [
        line.split(b":", 1)[1].strip().decode()
        for raw in stack.list_messages(name, folder)
        for line in raw.splitlines()
        if line.lower().startswith(b"subject:")
    ]


def _folders(imap: imaplib.IMAP4) -> dict[str, set[str]]:
    """Selectable folders as sent on the wire (modified UTF-7) -> their LIST flags."""
    status, lines = imap.list()
    assert status == "OK"
    folders = {}
    for line in lines:
        match = _LIST.match(line)
        assert match, line
        flags = set(match["flags"].decode().split())
        if "\\Noselect" not in flags:
            folders[match["name"].decode().strip('"')] = flags
    return folders


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def _processes_within(directory: Path) -> list[int]:
    """Processes whose working directory or command line lies under `directory`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = str(entry.joinpath("cwd").readlink())
            cmdline = entry.joinpath("cmdline").read_bytes().decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if cwd.startswith(str(directory)) or str(directory) in cmdline:
            found.append(int(entry.name))
    return found


def test_submission_needs_starttls_then_delivers_to_inbox(mailstack: MailStack) -> None:
    alice, subject = mailstack.users["alice"], _subject()
    with smtplib.SMTP(mailstack.host, mailstack.submission_port, timeout=10) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")
        assert smtp.mail(alice.email)[0] == 530
        smtp.starttls(context=_tls(mailstack))
        smtp.ehlo()
        assert {"PLAIN", "LOGIN"} <= set(smtp.esmtp_features["auth"].upper().split())
        smtp.login(alice.email, alice.password)
        _transaction(smtp, mailstack, "bob@example.test", subject)

    _wait_for(mailstack, "bob", "INBOX", subject, timeout=10)
    assert subject in _subjects(mailstack, "bob", "INBOX")
    assert subject not in _subjects(mailstack, "bob", "Junk")


def test_implicit_tls_ports_trust_only_the_throwaway_ca(mailstack: MailStack) -> None:
    alice, subject = mailstack.users["alice"], _subject()
    system_trust = ssl.create_default_context()
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(mailstack.host, mailstack.smtps_port, context=system_trust, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL(mailstack.host, mailstack.imaps_port, ssl_context=system_trust)

    with smtplib.SMTP_SSL(
        mailstack.host, mailstack.smtps_port, context=_tls(mailstack), timeout=10
    ) as smtp:
        smtp.login(alice.email, alice.password)
        _transaction(smtp, mailstack, "alice@example.test", subject)
    _wait_for(mailstack, "alice", "INBOX", subject, timeout=10)


@pytest.mark.parametrize(
    ("name", "wire_name", "flagged"),
    [
        ("carol", "Junk", True),
        ("dmitri", "&BCEEPwQwBDw-", True),  # "Спам" in modified UTF-7
        ("gina", "[Gmail]/Spam", True),
        ("yuki", "Bulk Mail", False),
    ],
)
def test_spam_users_get_mail_filed_into_their_one_spam_folder(
    mailstack: MailStack, name: str, wire_name: str, flagged: bool
) -> None:
    user, subject = mailstack.users[name], _subject()
    with _submission(mailstack) as smtp:
        _transaction(smtp, mailstack, user.email, subject)

    _wait_for(mailstack, name, user.spam_folder, subject, timeout=10)
    assert subject not in _subjects(mailstack, name, "INBOX")
    with _imaps(mailstack, name) as imap:
        folders = _folders(imap)
    assert set(folders) == {"INBOX", wire_name}
    assert ("\\Junk" in folders[wire_name]) is flagged
    assert user.files_to_spam and user.spam_special_use is flagged


_SPAMMY_HTML = (
    '<html><body><a href="http://example.test/claim"><img src="http://example.test/win.jpg"'
    ' width="600" height="800"></a></body></html>'
)


def test_content_filtered_mailbox_files_spam_by_content_and_scores_everything(
    mailstack: MailStack,
) -> None:
    if not mailstack.content_filter:
        pytest.skip("spamassassin/spamc not installed")
    judged = mailstack.users["judged"]
    plain, spammy = _subject(), _subject()
    spam = EmailMessage()
    spam["From"], spam["To"] = judged.email, judged.email
    spam["Subject"] = f"WIN a FREE prize now {spammy}"
    spam.set_content(_SPAMMY_HTML, subtype="html")
    with _submission(mailstack) as smtp:
        _transaction(smtp, mailstack, judged.email, plain)
        smtp.sendmail(mailstack.users["alice"].email, [judged.email], spam.as_bytes(policy=SMTP))

    _wait_for(mailstack, "judged", "Junk", spammy, timeout=20)
    _wait_for(mailstack, "judged", "INBOX", plain, timeout=20)
    (junked,) = [m for m in mailstack.list_messages("judged", "Junk") if spammy.encode() in m]
    (kept,) = [m for m in mailstack.list_messages("judged", "INBOX") if plain.encode() in m]
    # Headers only: the message itself is not rewritten into a report (report_safe 0).
    assert b"X-Spam-Flag: YES" in junked and b"HTML_IMAGE_ONLY" in junked
    assert message_from_bytes(junked).get_content_type() == "text/html"
    assert b"X-Spam-Status: No, score=" in kept and b"X-Spam-Report:" in kept
    # The other mailboxes are not judged.
    bob_subject = _subject()
    with _submission(mailstack) as smtp:
        _transaction(smtp, mailstack, "bob@example.test", bob_subject)
    _wait_for(mailstack, "bob", "INBOX", bob_subject, timeout=10)
    (bobs,) = [m for m in mailstack.list_messages("bob", "INBOX") if bob_subject.encode() in m]
    assert b"X-Spam-" not in bobs


def test_special_recipients_answer_at_rcpt_and_blackhole_never_delivers(
    mailstack: MailStack,
) -> None:
    subject = _subject()
    with _submission(mailstack) as smtp:
        assert smtp.mail(mailstack.users["alice"].email)[0] == 250
        code, text = smtp.rcpt("reject@example.test")
        assert (code, text[:5]) == (550, b"5.1.1")
        code, text = smtp.rcpt("greylist@example.test")
        assert (code, text[:5]) == (451, b"4.7.1")
        assert smtp.rcpt("blackhole@example.test")[0] == 250
        code, reply = smtp.data(_message(mailstack, "blackhole@example.test", subject))
        assert code == 250
    queue_id = _QUEUED.search(reply).group(1).decode()  # type: ignore[union-attr]

    deadline = time.monotonic() + 10
    while f"{queue_id}: removed" not in mailstack.postfix_log.read_text():
        assert time.monotonic() < deadline, "postfix never finished the blackhole message"
        time.sleep(0.02)
    log = mailstack.postfix_log.read_text()
    delivery = next(line for line in log.splitlines() if f"{queue_id}: to=<blackhole@" in line)
    assert "relay=none" in delivery and "status=sent" in delivery
    assert queue_id not in mailstack.queue_ids()
    assert subject not in _subjects(mailstack, "blackhole", "INBOX")
    for name in ("reject", "greylist"):
        assert mailstack.list_messages(name, "INBOX") == []


def test_slow_recipient_gets_mail_only_after_the_delay(mailstack: MailStack) -> None:
    subject = _subject()
    sent = time.monotonic()
    with _submission(mailstack) as smtp:
        queue_id = _transaction(smtp, mailstack, "slow@example.test", subject)
    assert queue_id in mailstack.queue_ids()

    arrived = _wait_for(mailstack, "slow", "INBOX", subject, timeout=mailstack.delay_seconds + 10)
    assert mailstack.delay_seconds <= arrived - sent < mailstack.delay_seconds + 2
    assert queue_id not in mailstack.queue_ids()


def test_wrong_password_is_refused_fast_every_time(mailstack: MailStack) -> None:
    alice = mailstack.users["alice"]
    wrong = "not-" + alice.password
    plain = base64.b64encode(f"\0{alice.email}\0{wrong}".encode()).decode()
    for _ in range(2):  # a per-IP penalty would show on the second attempt (2 s, then 4 s)
        with smtplib.SMTP(mailstack.host, mailstack.submission_port, timeout=10) as smtp:
            smtp.starttls(context=_tls(mailstack))
            smtp.ehlo()
            started = time.monotonic()
            code, text = smtp.docmd("AUTH", f"PLAIN {plain}")
            assert (code, text[:5]) == (535, b"5.7.8")
            assert time.monotonic() - started < 1.5

        imap = imaplib.IMAP4(mailstack.host, mailstack.imap_port, timeout=10)
        started = time.monotonic()
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            imap.login(alice.email, wrong)
        assert time.monotonic() - started < 1.5
        imap.shutdown()


def test_imap_starttls_on_the_plain_port(mailstack: MailStack) -> None:
    alice = mailstack.users["alice"]
    imap = imaplib.IMAP4(mailstack.host, mailstack.imap_port, timeout=10)
    try:
        assert "STARTTLS" in imap.capabilities
        imap.starttls(ssl_context=_tls(mailstack))
        assert isinstance(imap.sock, ssl.SSLSocket)
        imap.login(alice.email, alice.password)
        capabilities = set(imap.capability()[1][0].decode().upper().split())
        assert {"IDLE", "UIDPLUS", "SPECIAL-USE", "MOVE"} <= capabilities
        assert imap.select("INBOX")[0] == "OK"
    finally:
        imap.logout()


def test_second_stack_runs_alongside_and_stop_leaves_no_process(mailstack: MailStack) -> None:
    subject = _subject()
    with MailStack.start(delay_seconds=1) as other:
        ports = {other.submission_port, other.smtps_port, other.imap_port, other.imaps_port}
        assert len(ports) == 4
        assert ports.isdisjoint(
            {mailstack.submission_port, mailstack.smtps_port, mailstack.imap_port}
            | {mailstack.imaps_port}
        )
        assert other.ca_pem != mailstack.ca_pem
        with _submission(other) as smtp:
            _transaction(smtp, other, "bob@example.test", subject)
        _wait_for(other, "bob", "INBOX", subject, timeout=10)

        expected = {"postfix", "dovecot"} | ({"spamd"} if other.content_filter else set())
        assert set(other.pids) == expected
        processes = other.process_ids()
        # Postfix's workers (cleanup, lmtp, …) come and go on their own; the masters must run.
        assert len(processes) > 2 and all(_alive(pid) for pid in other.pids.values())
        root = other.root

    assert [pid for pid in processes if _alive(pid)] == []
    assert not root.exists()
    assert subject not in _subjects(mailstack, "bob", "INBOX")


@pytest.mark.parametrize(
    ("root_length", "step"),
    [
        # Unix socket paths max out at 108 bytes. Postfix's longest is
        # postfix-queue/public/postlog; Dovecot's LMTP socket for Postfix is 6 bytes longer.
        (100, "configure postfix"),
        (75, "start dovecot"),
    ],
)
def test_failed_start_raises_with_the_reason_and_leaves_no_process(
    root_length: int, step: str
) -> None:
    parent = Path(tempfile.mkdtemp(dir="/tmp"))
    parent.chmod(0o755)
    root = parent / ("d" * (root_length - len(str(parent)) - 1))
    try:
        with pytest.raises(MailStackError, match=f"{step} failed") as failure:
            MailStack.start(root)
        assert "too long" in str(failure.value)
        assert _processes_within(root) == []
    finally:
        shutil.rmtree(parent)
