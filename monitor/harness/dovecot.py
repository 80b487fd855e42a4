"""A private Dovecot: IMAP/IMAPS on loopback, LMTP and SASL sockets for the private Postfix.

Nothing is read from /etc/dovecot. Mail is stored as Maildir under the stack's directory,
owned by one unprivileged uid (the system `mail` user); a global sieve script files the
spam-test users' mail into their provider-shaped spam folders.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.harness.ca import ThrowawayCA
from monitor.harness.postfix import stop_child

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
SIEVEC = "/usr/bin/sievec"
MAIL_OWNER = "mail"  # exists on every Debian system; its uid is below Dovecot's default floor


@dataclass(frozen=True, slots=True)
class MailUser:
    """A mailbox of the harness. `files_to_spam`: the sieve files all its mail as spam."""

    name: str
    email: str
    password: str
    spam_folder: str
    files_to_spam: bool
    spam_special_use: bool = True  # False: no \Junk flag, found by name (Yahoo's "Bulk Mail")
    stamped: bool = False  # the sieve adds a spam filter's and an authenticator's verdicts
    # The sieve pipes its mail through SpamAssassin and files X-Spam-Flag: YES to its spam folder.
    content_filtered: bool = False


@dataclass(frozen=True, slots=True)
class DovecotPorts:
    imap: int
    imaps: int


_CONF = """\
# mailcanary harness: a private instance; nothing here comes from /etc/dovecot.
instance_name = {instance}
base_dir = {run}
state_dir = {state}
log_path = {log}
protocols = imap lmtp
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
# Loopback only; clients may still choose STARTTLS on the plain port.
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
# Wrong-password tests must be answered at once. (2.3.19 still answers failures on its
# 500 ms timer; the default would add 2 s, and the anvil penalty up to 15 s, see below.)
auth_failure_delay = 0
auth_cache_size = 0
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
{special_use}}}
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {users}
}}
# Bearer tokens are checked with the harness's token server (monitor.harness.tokenserver).
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {oauth2_conf}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {users}
}}
default_process_limit = {process_limit}
default_client_limit = {client_limit}
service imap {{
  process_limit = {imap_processes}
}}
service imap-login {{
{login_tuning}  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service lmtp {{
  unix_listener {lmtp_socket} {{
    mode = 0600
    user = postfix
    group = postfix
  }}
}}
service auth {{
  unix_listener {auth_socket} {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
# No per-IP penalty after failed logins (it would grow to 15 s between tests).
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
  postmaster_address = postmaster@{domain}
}}
plugin {{
  sieve_before = {sieve_before}
  # addheader, so the "stamped" users' mail carries verdict headers as a filter would add them
  sieve_extensions = +editheader
{filter_plugin}}}
"""


# High-performance login mode: a few imap-login processes each proxy many TLS sessions.
# Sieve's `filter` runs only programs from this directory (the harness's spamc wrapper).
_FILTER_PLUGIN = """\
  sieve_plugins = sieve_extprograms
  sieve_global_extensions = +vnd.dovecot.filter
  sieve_filter_bin_dir = {bin_dir}
  sieve_filter_exec_timeout = 30s
"""
FILTER_PROGRAM = "spamc"

_SHARED_LOGINS = "  service_count = 0\n  process_min_avail = 2\n  client_limit = {clients}\n"

# RFC 7662 introspection by POST; the token's user must be the one logging in.
_OAUTH2_CONF = """\
introspection_mode = post
introspection_url = {url}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
"""


class Dovecot:
    """One private instance under `root`; `pid` is its master (run in the foreground, our child)."""

    def __init__(self, root: Path, *, domain: str, ports: DovecotPorts, tls: ThrowawayCA) -> None:
        self.root = root
        self.domain = domain
        self.ports = ports
        self.tls = tls
        self.conf = root / "dovecot" / "dovecot.conf"
        self.run_dir = root / "run"  # short: socket paths are limited to 108 bytes
        self.mail_dir = root / "mail"
        self.log = root / "dovecot.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def configure(
        self,
        users: Sequence[MailUser],
        *,
        lmtp_socket: Path,
        auth_socket: Path,
        introspection_url: str,
        filter_program: str | None = None,
    ) -> None:
        """`filter_program`: the script (text) the content-filtered users' mail is piped
        through; without one their mail is delivered unfiltered."""
        owner = pwd.getpwnam(MAIL_OWNER)
        conf_dir = self.conf.parent
        for directory in (conf_dir, conf_dir / "state", self.mail_dir):
            directory.mkdir(mode=0o755, parents=True)
        os.chown(self.mail_dir, owner.pw_uid, owner.pw_gid)
        self.log.touch(mode=0o644)

        users_file = conf_dir / "users"
        # Passwords: readable by root and the auth process (user dovecot) only.
        users_file.touch(mode=0o640)
        os.chown(users_file, 0, pwd.getpwnam("dovecot").pw_gid)
        users_file.write_text(
            "".join(
                f"{u.email}:{{PLAIN}}{u.password}:{owner.pw_uid}:{owner.pw_gid}::"
                f"{self.mail_dir / u.name}::\n"
                for u in users
            )
        )
        oauth2_conf = conf_dir / "dovecot-oauth2.conf.ext"
        oauth2_conf.write_text(_OAUTH2_CONF.format(url=introspection_url), encoding="utf-8")
        sieve_before = conf_dir / "before.sieve"
        filter_plugin = ""
        if filter_program is not None:
            bin_dir = conf_dir / "sieve-filters"
            bin_dir.mkdir(mode=0o755)
            program = bin_dir / FILTER_PROGRAM
            program.write_text(filter_program, encoding="utf-8")
            program.chmod(0o755)
            filter_plugin = _FILTER_PLUGIN.format(bin_dir=bin_dir)
        script = _sieve_script(users, self.domain, filtered=filter_program is not None)
        sieve_before.write_text(script, encoding="utf-8")

        junk_names = sorted({u.spam_folder for u in users if u.spam_special_use})
        special_use = "".join(
            f'  mailbox "{name}" {{\n    special_use = \\Junk\n  }}\n' for name in junk_names
        )
        # Dovecot's defaults (100 processes, 1000 clients, 1024 imap sessions) unless a benchmark
        # asks for many mailboxes; then logins share a few processes instead of one each.
        many = len(users) > 200
        self.conf.write_text(
            _CONF.format(
                process_limit=max(100, 3 * len(users)),
                client_limit=max(1000, 4 * len(users)),
                imap_processes=max(1024, 3 * len(users)),
                login_tuning=_SHARED_LOGINS.format(clients=4 * len(users)) if many else "",
                instance=f"mailcanary-{self.ports.imap}",
                run=self.run_dir,
                state=conf_dir / "state",
                log=self.log,
                cert=self.tls.cert_file,
                key=self.tls.key_file,
                uid=owner.pw_uid,
                gid=owner.pw_gid,
                special_use=special_use,
                users=users_file,
                imap=self.ports.imap,
                imaps=self.ports.imaps,
                lmtp_socket=lmtp_socket,
                auth_socket=auth_socket,
                domain=self.domain,
                sieve_before=sieve_before,
                oauth2_conf=oauth2_conf,
                filter_plugin=filter_plugin,
            ),
            encoding="utf-8",
        )
        # Compiled now, as root: the LMTP process (uid `mail`) could not write the binary.
        self._run(SIEVEC, "-c", str(self.conf), str(sieve_before))

    def start(self, waits_for: Sequence[Path], timeout: float = 15.0) -> int:
        """Start in the foreground and wait until its ports and the given sockets answer."""
        if self.run_dir.exists():
            # A stale socket from an earlier run made the first login wait seconds.
            shutil.rmtree(self.run_dir)
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        sockets = [*waits_for, self.run_dir / "auth-userdb"]
        while not (all(p.exists() for p in sockets) and self._ports_answer()):
            if self._process.poll() is not None:
                raise RuntimeError(f"dovecot exited with status {self._process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"dovecot not ready after {timeout:.0f} s")
            time.sleep(0.02)
        return self._process.pid

    def create_folders(self, users: Sequence[MailUser]) -> None:
        """Each user gets exactly one spam-like folder, named (and flagged) per provider shape."""
        for user in users:
            self._doveadm("mailbox", "create", "-s", "-u", user.email, user.spam_folder)

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_child(process, timeout)

    def sessions(self) -> list[tuple[str, int]]:
        """(user, pid) of each IMAP session logged in now, as Dovecot's anvil counts them
        (`doveadm who -1`); each session is its own imap process here."""
        done = subprocess.run(
            [DOVEADM, "-c", str(self.conf), "-f", "tab", "who", "-1"],
            capture_output=True, text=True, check=True, timeout=30, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        found = []
        for line in done.stdout.splitlines()[1:]:  # after the header
            user, service, pid, *_ = line.split("\t")
            if service == "imap":
                found.append((user, int(pid)))
        return found

    def _doveadm(self, *args: str) -> None:
        self._run(DOVEADM, "-c", str(self.conf), *args)

    def _ports_answer(self) -> bool:
        for port in (self.ports.imap, self.ports.imaps):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            except OSError:
                return False
        return True

    @staticmethod
    def _run(*argv: str) -> None:
        subprocess.run(argv, capture_output=True, check=True, timeout=30, stdin=subprocess.DEVNULL)


def stamped_headers(domain: str) -> list[tuple[str, str]]:
    """What the sieve adds to a stamped user's mail, as a SpamAssassin and an OpenDKIM/OpenDMARC
    milter would: SPF passes, the (absent) DKIM signature fails, so DMARC fails."""
    return [
        ("X-Spam-Flag", "NO"),
        ("X-Spam-Score", "1.3"),
        ("X-Spam-Status", "No, score=1.3 required=5.0 tests=DKIM_INVALID,SPF_PASS autolearn=no"),
        (
            "Authentication-Results",
            f"mx.{domain}; spf=pass smtp.mailfrom=alice@{domain};"
            f" dkim=fail (signature did not verify) header.d={domain} header.s=harness;"
            f" dmarc=fail (p=none dis=none) header.from={domain}",
        ),
    ]


def _sieve_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sieve_script(users: Sequence[MailUser], domain: str, *, filtered: bool = False) -> str:
    extensions = ["fileinto", "envelope", "editheader"]
    if filtered:
        extensions.append("vnd.dovecot.filter")
    lines = [f"require [{', '.join(map(_sieve_string, extensions))}];"]
    for user in users:
        if filtered and user.content_filtered:
            # Judged by content: scored by spamd, then filed like a receiver's filter would.
            junk = _sieve_string(user.spam_folder)
            lines.append(
                f'if envelope :is "to" {_sieve_string(user.email)} {{ filter "{FILTER_PROGRAM}";'
                f' if header :is "X-Spam-Flag" "YES" {{ fileinto {junk}; stop; }} }}'
            )
        if user.stamped:
            # addheader puts each on top: added in reverse, they read top-down as listed.
            adds = " ".join(
                f"addheader {_sieve_string(name)} {_sieve_string(value)};"
                for name, value in reversed(stamped_headers(domain))
            )
            lines.append(f'if envelope :is "to" {_sieve_string(user.email)} {{ {adds} }}')
        if user.files_to_spam:
            folder = _sieve_string(user.spam_folder)
            lines.append(f'if envelope :is "to" "{user.email}" {{ fileinto {folder}; stop; }}')
    return "\n".join(lines) + "\n"
