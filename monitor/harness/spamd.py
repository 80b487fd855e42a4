"""A private SpamAssassin daemon for the harness: Debian's `spamd` on a loopback port.

Local rules only (`--local`, no DNS blocklists, no Bayes), its own site config in the stack's
directory (the `.pre` plugin loaders are copied from /etc/spamassassin, nothing else is read
from there), headers added without rewriting the message (`report_safe 0`), so a canary's
token header survives. Dovecot's sieve pipes the content-filtered mailboxes' mail through
`spamc` (see monitor.harness.dovecot).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from monitor.harness.postfix import stop_child

SPAMD = "/usr/sbin/spamd"
SPAMC = "/usr/bin/spamc"
SITE_PRE = Path("/etc/spamassassin")
REQUIRED_SCORE = 5.0

# The Report header on every message (not only spam), so a low score still shows its rules.
_LOCAL_CF = f"""\
required_score {REQUIRED_SCORE}
report_safe 0
use_bayes 0
bayes_auto_learn 0
skip_rbl_checks 1
add_header all Report _REPORT_
"""


def available() -> bool:
    return Path(SPAMD).exists() and Path(SPAMC).exists() and SITE_PRE.is_dir()


class Spamd:
    """One `spamd` bound to 127.0.0.1:`port`; `pid` is its parent (our child)."""

    def __init__(self, root: Path, port: int) -> None:
        self.dir = root / "spamassassin"
        self.port = port
        self.log = root / "spamd.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def launch(self) -> None:
        """Start loading the rules (~3 s) without waiting; `wait_ready` waits."""
        self.dir.mkdir(mode=0o755)
        for pre in SITE_PRE.glob("*.pre"):
            shutil.copy(pre, self.dir / pre.name)
        (self.dir / "local.cf").write_text(_LOCAL_CF, encoding="utf-8")
        argv = [
            SPAMD,
            f"--listen=127.0.0.1:{self.port}",
            f"--siteconfigpath={self.dir}",
            "--local",
            "--nouser-config",
            "--max-children=2",
            "--min-spare=1",
            "--max-spare=1",
            f"--syslog={self.log}",
            "--username=nobody",
            f"--helper-home-dir={self.dir}",
        ]
        self._process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until spamd answers PING (it listens only once the rules are compiled)."""
        if self._process is None:
            raise RuntimeError("spamd was not launched")
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self._process.poll() is not None:
                raise RuntimeError(f"spamd exited with status {self._process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"spamd not ready after {timeout:.0f} s")
            time.sleep(0.05)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING SPAMC/1.5\r\n\r\n")
                return b"PONG" in sock.recv(64)
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_child(process, timeout)

    def filter_script(self) -> str:
        """The program Dovecot's sieve `filter` runs: message in on stdin, scored out on stdout.
        spamc hands the message back unchanged if spamd cannot be reached."""
        return f"#!/bin/sh\nexec {SPAMC} -d 127.0.0.1 -p {self.port} -t 20 -s 20000000\n"
