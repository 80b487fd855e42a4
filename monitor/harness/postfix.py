"""A private Postfix instance: its own config dir, queue, log and ports; never the system one.

Mail for example.test goes to Dovecot over LMTP; there is no outbound `smtp` transport, so
nothing can leave the machine. A few recipients are answered specially (see RECIPIENT_RULES).
"""

from __future__ import annotations

import json
import os
import pty
import pwd
import select
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from monitor.harness.ca import ThrowawayCA

POSTFIX = "/usr/sbin/postfix"
POSTQUEUE = "/usr/sbin/postqueue"
POSTSUPER = "/usr/sbin/postsuper"

# Local part -> the smtpd access-map action for that recipient.
RECIPIENT_RULES = {
    "reject": "550 5.1.1 Recipient address rejected: mailbox unavailable (mailcanary harness)",
    "greylist": "451 4.7.1 Recipient address rejected: greylisted, try again later",
    "slow": "HOLD delivery delayed by the mailcanary harness",
}
# Accepted with 250, then thrown away by the discard transport: never delivered.
DISCARDED = ("blackhole",)

LMTP_SOCKET = "private/dovecot-lmtp"  # relative to the queue directory
AUTH_SOCKET = "private/auth"

_MAIN_CF = """\
compatibility_level = 3.6
myhostname = mail.{domain}
mydomain = {domain}
myorigin = {domain}
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
queue_directory = {queue}
data_directory = {data}
maillog_file = {log}
maillog_file_prefixes = {root}
smtpd_banner = $myhostname ESMTP mailcanary harness
biff = no
append_dot_mydomain = no
alias_maps =
alias_database =
local_recipient_maps =
smtpd_peername_lookup = no
# Tests need fast, honest answers: no tarpitting after errors, no input throttling.
smtpd_error_sleep_time = 0
in_flow_delay = 0
virtual_mailbox_domains = {domain}
virtual_mailbox_maps = texthash:{etc}/mailboxes
virtual_transport = lmtp:unix:{lmtp_socket}
transport_maps = texthash:{etc}/transport
lmtp_tls_security_level = none
default_transport = error:the mailcanary harness delivers nothing outside {domain}
relay_transport = $default_transport
local_transport = $default_transport
smtpd_sasl_type = dovecot
smtpd_sasl_path = {auth_socket}
smtpd_sasl_auth_enable = no
smtpd_sasl_authenticated_header = no
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_auth_only = yes
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions =
    check_recipient_access texthash:{etc}/recipient_access, permit_sasl_authenticated, reject
"""

_SMTPD_OPTIONS = """\
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=
"""

_MASTER_CF = """\
127.0.0.1:{submission} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
{smtpd_options}127.0.0.1:{smtps} inet n - n - - smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
{smtpd_options}pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


@dataclass(frozen=True, slots=True)
class PostfixPorts:
    submission: int
    smtps: int


class Postfix:
    """One private instance under `root`; `pid` is the master's, read from its pid file."""

    def __init__(self, root: Path, *, domain: str, ports: PostfixPorts, tls: ThrowawayCA) -> None:
        self.root = root
        self.domain = domain
        self.ports = ports
        self.tls = tls
        self.etc = root / "postfix-etc"
        self.queue = root / "postfix-queue"
        self.log = root / "postfix.log"
        self.pid: int | None = None

    @property
    def lmtp_socket(self) -> Path:
        return self.queue / LMTP_SOCKET

    @property
    def auth_socket(self) -> Path:
        return self.queue / AUTH_SOCKET

    def configure(self, mailboxes: Iterable[str]) -> None:
        """Write the config and run `postfix check` (which also creates the queue directories)."""
        self.etc.mkdir(mode=0o755)
        self.queue.mkdir(mode=0o755)  # `postfix check` fills it in but will not create it
        data = self.root / "postfix-data"
        data.mkdir(mode=0o700)
        os.chown(data, _uid("postfix"), -1)
        self.log.touch(mode=0o644)
        (self.etc / "main.cf").write_text(
            _MAIN_CF.format(
                domain=self.domain,
                root=self.root,
                etc=self.etc,
                queue=self.queue,
                data=data,
                log=self.log,
                lmtp_socket=LMTP_SOCKET,
                auth_socket=AUTH_SOCKET,
                cert=self.tls.cert_file,
                key=self.tls.key_file,
            )
        )
        (self.etc / "master.cf").write_text(
            _MASTER_CF.format(
                submission=self.ports.submission,
                smtps=self.ports.smtps,
                smtpd_options=_SMTPD_OPTIONS,
            )
        )
        addresses = [f"{local}@{self.domain}" for local in mailboxes]
        _write_map(self.etc / "mailboxes", {address: "OK" for address in addresses})
        _write_map(
            self.etc / "recipient_access",
            {f"{local}@{self.domain}": action for local, action in RECIPIENT_RULES.items()},
        )
        _write_map(
            self.etc / "transport",
            {f"{local}@{self.domain}": "discard:" for local in DISCARDED},
        )
        # Postfix re-reads a file modified in the last couple of seconds until it looks
        # stable (300 ms steps, ~2 s in all): date ours back so every command starts at once.
        settled = time.time() - 60
        for path in self.etc.iterdir():
            os.utime(path, (settled, settled))
        self._check()

    def start(self) -> int:
        self._postfix("start")
        self.pid = int((self.queue / "pid" / "master.pid").read_text().split()[0])
        return self.pid

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the recorded master (it takes its children down); wait for all of them."""
        if self.pid is None:
            return
        terminate(self.pid, children(self.pid), timeout)
        self.pid = None

    def queue_entries(self) -> list[dict[str, object]]:
        """`postqueue -j`: one JSON object per queued message (queue_name, queue_id, ...)."""
        out = self._run(POSTQUEUE, "-j").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def release(self, queue_id: str) -> None:
        """Move a held message back and ask for its immediate delivery."""
        self._run(POSTSUPER, "-H", queue_id)
        self._run(POSTQUEUE, "-i", queue_id)

    def _postfix(self, command: str) -> None:
        self._run(POSTFIX, command)

    def _check(self, timeout: float = 30.0) -> None:
        """`postfix check`, its stderr on a pseudo-terminal: only there does it say what's fatal."""
        argv = [POSTFIX, "-c", str(self.etc), "check"]
        controller, terminal = pty.openpty()
        output = bytearray()
        try:
            with subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal
            ) as process:
                os.close(terminal)
                deadline = time.monotonic() + timeout
                while process.poll() is None or select.select([controller], [], [], 0)[0]:
                    if time.monotonic() > deadline:
                        process.kill()
                        raise subprocess.TimeoutExpired(argv, timeout)
                    if select.select([controller], [], [], 0.05)[0]:
                        try:
                            output += os.read(controller, 4096)
                        except OSError:  # EIO: every writer has closed the terminal
                            break
        finally:
            os.close(controller)
        if process.returncode != 0:
            raise subprocess.CalledProcessError(
                process.returncode, argv, stderr=output.decode(errors="replace")
            )

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [program, "-c", str(self.etc), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )


class HoldReleaser:
    """Releases each held message once it has sat in the hold queue for `delay` seconds.

    A message's age is counted from when this thread first saw it held: that is never
    earlier than its real arrival, so no message comes out early.
    """

    def __init__(self, postfix: Postfix, delay: float, interval: float = 0.2) -> None:
        self._postfix = postfix
        self._delay = delay
        self._interval = interval
        self._first_seen: dict[str, float] = {}
        # Wall-clock time each queue id was released: the ground truth for delay tests.
        self.released: dict[str, datetime] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mailstack-hold", daemon=True)
        self.errors: deque[str] = deque(maxlen=20)  # for a debugger; a stopping Postfix fails

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self._tick()
            except (subprocess.SubprocessError, OSError, ValueError) as exc:
                self.errors.append(repr(exc))

    def _tick(self) -> None:
        now = time.monotonic()
        held = {
            str(entry["queue_id"])
            for entry in self._postfix.queue_entries()
            if entry.get("queue_name") == "hold"
        }
        for queue_id in held:
            first_seen = self._first_seen.setdefault(queue_id, now)
            if now - first_seen >= self._delay and not self._stopping.is_set():
                self.released[queue_id] = datetime.now(UTC)
                self._postfix.release(queue_id)
        for gone in set(self._first_seen) - held:
            del self._first_seen[gone]


def children(pid: int) -> set[int]:
    """Direct children of `pid`, read from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and int(stat[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for someone to reap it."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def terminate(master: int, others: set[int], timeout: float) -> None:
    """SIGTERM the master (it stops its children), wait for all; SIGKILL what outlives `timeout`."""
    pids = {master, *others}
    _signal(master, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in pids:
        if alive(pid):
            _signal(pid, signal.SIGKILL)


def stop_child(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop a master we started ourselves (and its children), then reap it."""
    if alive(process.pid):
        terminate(process.pid, children(process.pid), timeout)
    process.wait(timeout=timeout)


def _signal(pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _stat(pid: int) -> list[str] | None:
    """(state, ppid, ...) from /proc/PID/stat, or None once the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def _write_map(path: Path, entries: dict[str, str]) -> None:
    path.write_text("".join(f"{key} {value}\n" for key, value in entries.items()))


def _uid(user: str) -> int:
    return pwd.getpwnam(user).pw_uid
