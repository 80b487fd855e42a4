"""`mailcanary demo`: the real thing against a private Postfix + Dovecot on 127.0.0.1.

The stack's mailboxes are built to produce every verdict: inbox (fast and slow), spam in
four provider shapes, a 550 rejection, a 451 deferral, a wrong password, and a canary that
is accepted but never delivered. The demo says whether each canary got the verdict the
stack was built to give, so it doubles as a smoke test of an installation.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import socket
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from monitor.config.load import load_config
from monitor.core.models import ProbeRecord, Verdict
from monitor.harness.mailstack import MailStack, MailStackError, missing_requirements

out = Console(markup=False)  # data printed as it is; styled lines say markup=True

# (route, sender account, recipients with the verdict each must get)
ROUTES: list[tuple[str, str, dict[str, Verdict]]] = [
    ("to-inboxes", "alice", {"bob": Verdict.INBOX, "slow": Verdict.INBOX}),
    ("implicit-tls", "alice-smtps", {"bob": Verdict.INBOX}),
    (
        "to-spam-folders",
        "alice",
        {"carol": Verdict.SPAM, "dmitri": Verdict.SPAM, "gina": Verdict.SPAM, "yuki": Verdict.SPAM},
    ),
    (
        "trouble",
        "alice",
        {
            "reject": Verdict.SEND_FAILED,
            "greylist": Verdict.SEND_FAILED,
            "blackhole": Verdict.MISSING,
        },
    ),
    ("wrong-password", "mallory", {"bob": Verdict.SEND_FAILED}),
    ("untrusted-certificate", "alice-no-ca", {"bob": Verdict.SEND_FAILED}),
    ("mailbox-login-refused", "alice", {"bob-wrong-imap": Verdict.CHECK_FAILED}),
    ("mailbox-unreachable", "alice", {"bob-imap-down": Verdict.CHECK_FAILED}),
]


def _closed_port() -> int:
    """A loopback port nobody listens on: an IMAP server that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _account(
    name: str, email: str, secret: Path, *, smtp: str = "", imap: str = "", ca: Path | None = None
) -> str:
    lines = [
        "[[accounts]]",
        f'name = "{name}"',
        f'email = "{email}"',
        f'password_file = "{secret}"',
    ]
    if ca is not None:
        lines.append(f'ca_file = "{ca}"')
    lines += [line for line in (smtp, imap) if line]
    return "\n".join(lines) + "\n"


def _secret(directory: Path, name: str, value: str) -> Path:
    path = directory / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def demo_monitor(var: Path) -> str:
    """The demo's [monitor] keys. Absolute paths: a relative database would be another (empty)
    one in each directory the config is used from."""
    var = var.absolute()
    return (
        f'database = "sqlite:///{var}/mailcanary.db"\nstate_dir = "{var}"\n'
        'interval = "1m"\ndeadline = "20s"\npoll_interval = "5s"\n'
    )


def write_config(
    stack: MailStack,
    directory: Path,
    *,
    routes: list[tuple[str, str, dict[str, Verdict]]] = ROUTES,
    monitor: str | None = None,
) -> Path:
    """A config for this stack; passwords go to 0600 files beside it, never inline. Every path
    in it is absolute; `monitor` defaults to `demo_monitor(directory)`.

    Every account trusts the stack's CA except `alice-no-ca`, which must fail TLS.
    """
    directory = directory.absolute()
    if monitor is None:
        monitor = demo_monitor(directory)
    secrets = directory / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    secrets.chmod(0o700)
    # A copy, so the config (and `history` with it) stays valid after the stack is gone.
    ca = directory / "ca.pem"
    ca.write_bytes(stack.ca_pem)
    host = stack.host
    submission = (
        f'smtp = {{ host = "{host}", port = {stack.submission_port}, security = "starttls" }}'
    )
    smtps = f'smtp = {{ host = "{host}", port = {stack.smtps_port}, security = "tls" }}'
    imaps = f'imap = {{ host = "{host}", port = {stack.imaps_port}, security = "tls" }}'
    imap_starttls = f'imap = {{ host = "{host}", port = {stack.imap_port}, security = "starttls" }}'
    parts = [
        "# Written by mailcanary for a private mail stack (monitor/harness).\n",
        f"[monitor]\n{monitor}",
    ]
    for user in stack.users.values():
        secret = _secret(secrets, user.name, user.password)
        smtp = submission if user.name == "alice" else ""
        imap = imap_starttls if user.name == "carol" else imaps
        parts.append(_account(user.name, user.email, secret, smtp=smtp, imap=imap, ca=ca))
    alice, bob = stack.users["alice"], stack.users["bob"]
    alice_secret = secrets / "alice"
    parts.append(_account("alice-smtps", alice.email, alice_secret, smtp=smtps, ca=ca))
    parts.append(_account("alice-no-ca", alice.email, alice_secret, smtp=submission))
    wrong = _secret(secrets, "wrong", "not-the-password")
    parts.append(_account("mallory", alice.email, wrong, smtp=submission, ca=ca))
    parts.append(_account("bob-wrong-imap", bob.email, wrong, imap=imaps, ca=ca))
    down = f'imap = {{ host = "{host}", port = {_closed_port()}, security = "tls" }}'
    parts.append(_account("bob-imap-down", bob.email, secrets / "bob", imap=down, ca=ca))
    for name, sender, expected in routes:
        recipients = ", ".join(f'"{r}"' for r in expected)
        parts.append(f'[[routes]]\nname = "{name}"\nfrom = "{sender}"\nto = [{recipients}]\n')
    path = directory / "mailcanary.toml"
    path.write_text("\n".join(parts))
    return path


async def run_demo(*, deadline: float, keep: bool = False) -> int:
    """Probe every route of a fresh stack once; with `keep`, leave the stack up afterwards
    (commands to try printed) until this process gets SIGTERM or SIGINT."""
    from monitor.cli.probe import run_probe

    reason = missing_requirements()
    if reason is not None:
        out.print(f"[red]demo:[/] {escape(str(reason))} (run it through ./dev demo)", markup=True)
        return 69
    out.print("Starting a private Postfix + Dovecot on 127.0.0.1 …")
    try:
        stack = await asyncio.to_thread(MailStack.start)
    except MailStackError as exc:
        out.print(f"[red]demo: the mail stack did not start:[/] {escape(str(exc))}", markup=True)
        return 69
    try:
        var = Path(os.getcwd(), "var")
        path = write_config(stack, var / "demo", monitor=demo_monitor(var))
        cfg = load_config(path)
        out.print(
            f"Stack up (SMTP {stack.submission_port}/{stack.smtps_port}, "
            f"IMAP {stack.imap_port}/{stack.imaps_port}); config: {path}; "
            f"database: {cfg.monitor.database}\n",
            markup=False,
        )
        _, records = await run_probe(cfg, cfg.routes, deadline=deadline)
        code = _judge(records)
        command = f"{_command_prefix()} --config {shlex.quote(str(path))}"
        if keep:
            _print_kept(stack, command)
            await _until_stopped()
        else:
            _say(f"They are recorded in {cfg.monitor.database}; see them again with")
            _say(f"  {command} history")
    finally:
        await asyncio.to_thread(stack.stop)
    return code


def _judge(records: list[ProbeRecord]) -> int:
    """0 when every canary got the verdict the stack was built to give, else 1 (said why)."""
    expected = {(route, to): v for route, _, wanted in ROUTES for to, v in wanted.items()}
    wrong = []
    for r in records:
        want = expected[(r.planned.route, r.planned.recipient)]
        got = r.decision.verdict if r.decision else None
        if got is not want:
            wrong.append(
                f"{r.planned.route} → {r.planned.recipient}: expected {want.value}, "
                f"got {got.value if got else r.state}"
            )
    if wrong or len(records) != len(expected):
        out.print(
            "[red]Some canaries did not get the verdict the stack was built to give:[/]",
            markup=True,
        )
        for line in wrong:
            _say(f"  {line}")
        return 1
    out.print(
        f"[green]All {len(records)} canaries got the verdict the stack was built to give.[/]",
        markup=True,
    )
    return 0


def _say(line: str) -> None:
    # Commands and paths are printed whole: no markup, no wrapping, so they can be pasted.
    out.print(line, markup=False, highlight=False, soft_wrap=True)


def _sudo() -> str:
    # Started through sudo: the stack, its secrets files and the database are root's.
    return "sudo " if os.environ.get("SUDO_USER") else ""


def _command_prefix() -> str:
    """How this process was started, so the printed commands run the same mailcanary."""
    started_as = Path(sys.argv[0])
    if started_as.name == "mailcanary":
        return _sudo() + shlex.quote(str(started_as.absolute()))
    return f"{_sudo()}{shlex.quote(sys.executable)} -m monitor.cli"


def _print_kept(stack: MailStack, command: str) -> None:
    pids = ", ".join(f"{name} pid {pid}" for name, pid in stack.pids.items())
    _say(f"\nThe mail stack stays up ({pids}; files in {stack.root}). Try, from anywhere:")
    width = max(len(args) for args, _ in KEPT_COMMANDS)
    for args, why in KEPT_COMMANDS:
        _say(f"  {command} {args.ljust(width)}  # {why}")
    _say(f"Stop it: {_sudo()}kill {os.getpid()}   (this process; Ctrl-C here does the same)")


# What is worth trying on a kept stack; tests run all but `run` and the full `probe`.
KEPT_COMMANDS = [
    ("probe --route to-inboxes", "one route again: two canaries to inboxes"),
    ("probe", "every route (the never-delivered canary waits out its deadline)"),
    ("history", "every probe recorded so far"),
    ("status", "last verdict per route and mailbox"),
    ("report --since 1h", "deliverability of the last hour"),
    ("diagnose alice", "the SMTP and IMAP troubleshooting steps for one account"),
    ("run", "the daemon: each route every minute; Ctrl-C stops it"),
]


async def _until_stopped() -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await stopping.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
