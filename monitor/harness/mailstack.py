"""The real mail stack for tests and `mailcanary demo`: private Postfix + Dovecot on loopback.

Everything lives in one temp dir and on free 127.0.0.1 ports, so two stacks can run side by
side and the system's own Postfix/Dovecot are never touched. Needs root and the Debian
packages postfix, dovecot-imapd, dovecot-lmtpd, dovecot-sieve; spamassassin and spamc for the
content-filtered mailbox (without them its mail is delivered unjudged).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import imaplib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from monitor.core.folders import quote_mailbox
from monitor.harness.ca import ThrowawayCA
from monitor.harness.dovecot import DOVEADM, DOVECOT, Dovecot, DovecotPorts, MailUser
from monitor.harness.postfix import POSTFIX, HoldReleaser, Postfix, PostfixPorts, children
from monitor.harness.spamd import Spamd
from monitor.harness.spamd import available as spamd_available

__all__ = ["DOMAIN", "HOST", "MailStack", "MailStackError", "MailUser", "missing_requirements"]

HOST = "127.0.0.1"
DOMAIN = "example.test"

# name -> (spam folder, files all mail there, folder carries \Junk)
_MAILBOXES: dict[str, tuple[str, bool, bool]] = {
    "alice": ("Junk", False, True),
    "bob": ("Junk", False, True),
    "carol": ("Junk", True, True),
    "dmitri": ("Спам", True, True),  # Yandex shape
    "gina": ("[Gmail]/Spam", True, True),  # Gmail shape
    "yuki": ("Bulk Mail", True, False),  # Yahoo shape: found by name only
    # Postfix answers these recipients specially (see monitor.harness.postfix).
    "reject": ("Junk", False, True),
    "greylist": ("Junk", False, True),
    "blackhole": ("Junk", False, True),
    "slow": ("Junk", False, True),
    # The sieve stamps its mail with spam-filter and Authentication-Results headers.
    "vetted": ("Junk", False, True),
    # Logs in with XOAUTH2 bearer tokens checked at `oauth_url` (monitor.harness.tokenserver).
    "oauthuser": ("Junk", False, True),
    # Judged by content: SpamAssassin scores its mail; X-Spam-Flag: YES goes to Junk.
    "judged": ("Junk", False, True),
}
_STAMPED = frozenset({"vetted"})
_CONTENT_FILTERED = frozenset({"judged"})


class MailStackError(RuntimeError):
    """The stack could not start (the message carries the tail of the relevant log)."""


def missing_requirements() -> str | None:
    """Why this machine cannot run a stack, or None when it can."""
    if os.geteuid() != 0:
        return "the mail stack needs root (private Postfix and Dovecot instances)"
    absent = [path for path in (POSTFIX, DOVECOT, DOVEADM) if not Path(path).exists()]
    if absent:
        return f"the mail stack needs Postfix and Dovecot; missing: {', '.join(absent)}"
    return None


class MailStack:
    """A running private Postfix + Dovecot; build it with `MailStack.start()`."""

    host = HOST
    domain = DOMAIN

    def __init__(
        self,
        root: Path,
        *,
        owns_root: bool,
        delay_seconds: float,
        extra_users: int = 0,
        content_filter: bool = True,
    ) -> None:
        self.root = root
        self.delay_seconds = delay_seconds
        self._owns_root = owns_root
        submission, smtps, imap, imaps, oauth, spamd = _free_ports(6)
        # Reserved for a test's token server: Dovecot asks it about every bearer token.
        self.oauth_port = oauth
        self.submission_port = submission
        self.smtps_port = smtps
        self.imap_port = imap
        self.imaps_port = imaps
        self.users: dict[str, MailUser] = {
            name: MailUser(
                name=name,
                email=f"{name}@{DOMAIN}",
                password=base64.b32encode(os.urandom(10)).decode().lower(),
                spam_folder=folder,
                files_to_spam=to_spam,
                spam_special_use=flagged,
                stamped=name in _STAMPED,
                content_filtered=name in _CONTENT_FILTERED,
            )
            for name, (folder, to_spam, flagged) in _MAILBOXES.items()
        }
        # Plain mailboxes for benchmarks (bench/scale.py): INBOX and a \Junk folder each.
        for n in range(1, extra_users + 1):
            name = f"user{n:05d}"
            password = base64.b32encode(os.urandom(10)).decode().lower()
            self.users[name] = MailUser(name, f"{name}@{DOMAIN}", password, "Junk", False)
        self.tls = ThrowawayCA.create(root / "tls", HOST, "localhost")
        self._postfix = Postfix(
            root, domain=DOMAIN, ports=PostfixPorts(submission, smtps), tls=self.tls
        )
        self._dovecot = Dovecot(root, domain=DOMAIN, ports=DovecotPorts(imap, imaps), tls=self.tls)
        self._releaser = HoldReleaser(self._postfix, delay_seconds)
        # Only when asked for and installed; `content_filter` says whether it runs.
        self._spamd = Spamd(root, spamd) if content_filter and spamd_available() else None
        self._stopped = False

    # -- life cycle -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        root: Path | None = None,
        *,
        delay_seconds: float = 3.0,
        extra_users: int = 0,
        content_filter: bool = True,
    ) -> MailStack:
        reason = missing_requirements()
        if reason is not None:
            raise MailStackError(reason)
        owns_root = root is None
        if root is None:
            # Not pytest's tmp_path: /tmp/pytest-of-root is 0700 and postfix/dovecot users
            # must traverse the stack dir; short, because unix socket paths max out at 108 bytes.
            root = Path(tempfile.mkdtemp(prefix="mc", dir="/tmp"))
        else:
            root.mkdir(parents=True, exist_ok=True)
            if any(root.iterdir()):
                raise MailStackError(f"mail stack: {root} is not empty")
        root.chmod(0o755)
        try:
            stack = cls(
                root,
                owns_root=owns_root,
                delay_seconds=delay_seconds,
                extra_users=extra_users,
                content_filter=content_filter,
            )
        except Exception:
            if owns_root:
                shutil.rmtree(root, ignore_errors=True)
            raise
        atexit.register(stack.stop)  # a crashed test run must not leave daemons behind
        stack._boot()
        return stack

    def _boot(self) -> None:
        users = list(self.users.values())
        step, log = "configure postfix", self.postfix_log
        try:
            if self._spamd is not None:
                # Its rules load (~3 s) while Postfix and Dovecot start.
                step, log = "start spamd", self._spamd.log
                self._spamd.launch()
            step, log = "configure postfix", self.postfix_log
            self._postfix.configure(mailboxes=self.users)
            step, log = "configure dovecot", self.dovecot_log
            self._dovecot.configure(
                users,
                lmtp_socket=self._postfix.lmtp_socket,
                auth_socket=self._postfix.auth_socket,
                introspection_url=f"{self.oauth_url}/introspect",
                filter_program=None if self._spamd is None else self._spamd.filter_script(),
            )
            step = "start dovecot"
            self._dovecot.start(waits_for=[self._postfix.lmtp_socket, self._postfix.auth_socket])
            step = "create folders"
            self._dovecot.create_folders(users)
            step, log = "start postfix", self.postfix_log
            self._postfix.start()
            self._releaser.start()
            if self._spamd is not None:
                step, log = "start spamd", self._spamd.log
                self._spamd.wait_ready()
        except BaseException as exc:
            tail = _tail(log)
            self.stop()
            if not isinstance(exc, Exception):  # Ctrl-C: stopped, and still an interrupt
                raise
            raise MailStackError(f"mail stack: {step} failed: {_describe(exc)}\n{tail}") from exc

    def stop(self) -> None:
        """Stop every process this stack started (by recorded pid) and remove its directory."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        self._releaser.stop()
        try:
            self._postfix.stop()
        finally:
            self._dovecot.stop()
            if self._spamd is not None:
                self._spamd.stop()
            if self._owns_root:
                shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> MailStack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- facts for clients ------------------------------------------------------------------

    @property
    def oauth_url(self) -> str:
        """Where Dovecot expects the token server (start one on `oauth_port`)."""
        return f"http://{HOST}:{self.oauth_port}"

    @property
    def ca_file(self) -> Path:
        return self.tls.ca_file

    @property
    def ca_pem(self) -> bytes:
        return self.tls.ca_pem

    @property
    def content_filter(self) -> bool:
        """True when SpamAssassin judges the content-filtered mailboxes' mail."""
        return self._spamd is not None

    @property
    def spamd_port(self) -> int | None:
        """Where the harness's spamd listens on 127.0.0.1 (for spamc), while it runs."""
        return None if self._spamd is None else self._spamd.port

    @property
    def postfix_log(self) -> Path:
        return self._postfix.log

    @property
    def dovecot_log(self) -> Path:
        return self._dovecot.log

    @property
    def pids(self) -> dict[str, int]:
        """The master processes: {"postfix": pid, "dovecot": pid} while running."""
        found = {
            "postfix": self._postfix.pid,
            "dovecot": self._dovecot.pid,
            "spamd": None if self._spamd is None else self._spamd.pid,
        }
        return {name: pid for name, pid in found.items() if pid is not None}

    def process_ids(self) -> set[int]:
        """The masters and their current children."""
        return {pid for master in self.pids.values() for pid in (master, *children(master))}

    def imap_sessions(self) -> list[tuple[str, int]]:
        """(email, imap process id) of every IMAP session logged in now."""
        return self._dovecot.sessions()

    def user(self, user: str | MailUser) -> MailUser:
        return self.users[user if isinstance(user, str) else user.name]

    def imap_login_args(self, user: str | MailUser) -> tuple[str, int]:
        """Where `user` reads mail over implicit TLS (verify with `ca_file`)."""
        self.user(user)
        return self.host, self.imaps_port

    def released_at(self, queue_id: str) -> datetime | None:
        """When the hold releaser let this message go (wall clock, UTC), if it did."""
        return self._releaser.released.get(queue_id)

    def queue_ids(self) -> list[str]:
        """Every message still in Postfix's queues (hold, incoming, active, deferred)."""
        return [str(entry["queue_id"]) for entry in self._postfix.queue_entries()]

    # -- mailbox access for tests (plain IMAP on loopback, bytes exactly as stored) ---------

    def append(self, user: str | MailUser, folder: str, raw: bytes) -> None:
        with self._imap(user) as imap:
            _ok(imap.append(quote_mailbox(folder), None, None, raw))

    def list_messages(self, user: str | MailUser, folder: str) -> list[bytes]:
        """Raw messages in `folder`, oldest first."""
        with self._imap(user) as imap:
            _ok(imap.select(quote_mailbox(folder), readonly=True))
            uids = _ok(imap.uid("SEARCH", "ALL"))[0].split()
            if not uids:
                return []
            fetched = _ok(imap.uid("FETCH", b",".join(uids).decode(), "(BODY.PEEK[])"))
            return [part[1] for part in fetched if isinstance(part, tuple)]

    @contextlib.contextmanager
    def _imap(self, user: str | MailUser) -> Iterator[imaplib.IMAP4]:
        account = self.user(user)
        imap = imaplib.IMAP4(self.host, self.imap_port, timeout=10)
        try:
            imap.login(account.email, account.password)
            yield imap
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                imap.logout()


def _ok(response: tuple[str, list[Any]]) -> list[Any]:
    status, data = response
    if status != "OK":
        raise imaplib.IMAP4.error(f"{status} {data!r}")
    return data


def _free_ports(count: int) -> list[int]:
    """Ports free right now; all held open together so none is handed out twice."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def _describe(exc: Exception) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        output = exc.stderr or exc.stdout or ""
        if isinstance(output, bytes):
            output = output.decode(errors="replace")
        return f"{Path(exc.cmd[0]).name} exited with {exc.returncode}: {output.strip()}"
    return f"{type(exc).__name__}: {exc}"


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
