"""End to end through the real Postfix + Dovecot: the CLI a user runs, the database it leaves."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import datetime
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

from monitor.core.canary import TOKEN_HEADER
from monitor.core.models import Verdict
from monitor.harness.demo import ROUTES, write_config

pytestmark = pytest.mark.mailstack
REPO = Path(__file__).resolve().parents[2]


def mailcanary(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
        check=False,
    )


@pytest.fixture
def configured(mailstack, tmp_path):
    monitor = (
        f'database = "sqlite:///{tmp_path}/mc.db"\nstate_dir = "{tmp_path}/state"\n'
        'interval = "1m"\ndeadline = "20s"\npoll_interval = "2s"\n'
    )
    return write_config(mailstack, tmp_path, monitor=monitor), tmp_path / "mc.db"


def test_every_verdict_through_the_cli_and_the_same_in_history(mailstack, configured):
    path, db = configured
    done = mailcanary("--config", str(path), "probe", "--json", "--deadline", "8s")
    assert done.returncode == 3, done.stderr  # check_failed is the worst verdict present
    rows = {(r["route"], r["to"]): r for r in map(json.loads, done.stdout.splitlines())}
    expected = {(route, to): v.value for route, _, wanted in ROUTES for to, v in wanted.items()}
    assert {key: row["verdict"] for key, row in rows.items()} == expected

    inbox = rows[("to-inboxes", "bob")]
    assert (inbox["folder"], inbox["smtp_code"], inbox["from"]) == ("INBOX", 250, "alice")
    assert inbox["queue_id"] and inbox["tls_version"].startswith("TLSv1.")
    assert 0 <= inbox["delivery_seconds"] < 3 and inbox["arrived_at"] > inbox["sent_at"]
    assert [r["phase"] for r in inbox["smtp_replies"]][-1] == "data"
    assert rows[("implicit-tls", "bob")]["verdict"] == "inbox"

    slow = rows[("to-inboxes", "slow")]  # held by Postfix, released by the harness
    released = mailstack.released_at(slow["queue_id"])
    assert released is not None
    held_for = (released - datetime.fromisoformat(slow["sent_at"])).total_seconds()
    assert held_for >= mailstack.delay_seconds
    # Measured within a second of the truth: after the release, LMTP and IDLE take the rest.
    assert held_for - 0.5 <= slow["delivery_seconds"] <= held_for + 1.0

    folders = {
        to: rows[("to-spam-folders", to)]["folder"] for to in ("carol", "dmitri", "gina", "yuki")
    }
    assert folders == {
        "carol": "Junk",
        "dmitri": "Спам",
        "gina": "[Gmail]/Spam",
        "yuki": "Bulk Mail",
    }
    # Four recipients, one SMTP session: its greeting is one canary's, shared by the others.
    greetings = [rows[("to-spam-folders", to)]["smtp_replies"][0] for to in folders]
    assert [g["phase"] for g in greetings] == ["greeting"] * 4
    assert sorted(g["shared"] for g in greetings) == [False, True, True, True]

    def failure(route: str, to: str) -> tuple:
        r = rows[(route, to)]
        return r["failure"], r["failure_phase"], r["smtp_code"], r["smtp_enhanced"], r["transient"]

    assert failure("trouble", "reject") == ("rejected", "rcpt_to", 550, "5.1.1", False)
    assert failure("trouble", "greylist") == ("deferred", "rcpt_to", 451, "4.7.1", True)
    assert failure("wrong-password", "bob") == ("auth_failed", "auth", 535, "5.7.8", False)
    assert failure("untrusted-certificate", "bob")[:2] == ("tls_failed", "tls")
    imap = rows[("mailbox-login-refused", "bob-wrong-imap")]
    assert (imap["failure"], imap["failure_phase"], imap["smtp_code"]) == (
        "auth_failed",
        "imap_auth",
        250,
    )
    down = rows[("mailbox-unreachable", "bob-imap-down")]  # never "missing": we could not look
    assert (down["failure"], down["failure_phase"], down["transient"]) == (
        "connect_failed",
        "imap_connect",
        True,
    )
    assert rows[("trouble", "blackhole")]["failure"] is None

    shown = mailcanary("--config", str(path), "history", "--json")
    assert shown.returncode == 0, shown.stderr
    history = {r["token"]: r for r in map(json.loads, shown.stdout.splitlines())}
    stable = (
        "verdict",
        "folder",
        "failure",
        "failure_phase",
        "smtp_code",
        "smtp_enhanced",
        "smtp_message",
        "queue_id",
        "delivery_seconds",
        "sent_at",
        "arrived_at",
        "arrived_after",
        "arrived_before",
    )
    for row in rows.values():
        assert {k: history[row["token"]][k] for k in stable} == {k: row[k] for k in stable}

    # Secrets never reach the output or the database.
    blob = done.stdout + done.stderr + shown.stdout + db.read_bytes().decode("latin-1")
    for user in mailstack.users.values():
        assert user.password not in blob


def test_cleanup_deletes_only_verified_canaries(mailstack, configured):
    path, _ = configured
    bob = mailstack.users["bob"]
    mailstack.append(bob, "INBOX", b"Subject: a letter from a human\r\n\r\nkeep me\r\n")
    look_alike = (
        f"Subject: mailcanary delivery check forged\r\n{TOKEN_HEADER}: "
        "aaaaaaaaaaaaaaaaaaaa.1790000000.00000000000000000000000000000000\r\n"
        "X-Mailcanary-Route: to-inboxes\r\n\r\nnot ours\r\n"
    ).encode()
    mailstack.append(bob, "INBOX", look_alike)
    done = mailcanary(
        "--config", str(path), "probe", "--json", "--route", "to-inboxes", "--deadline", "8s"
    )
    assert done.returncode == 0, done.stderr
    tokens = {json.loads(line)["token"] for line in done.stdout.splitlines()}
    left = [
        message_from_bytes(raw, policy=default) for raw in mailstack.list_messages(bob, "INBOX")
    ]
    subjects = {m["Subject"] for m in left}
    assert {"a letter from a human", "mailcanary delivery check forged"} <= subjects
    assert not tokens & {m[TOKEN_HEADER] for m in left}


def test_bad_config_is_one_line_per_problem_and_exit_78(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[accounts]]\nname = "a"\nemail = "a@x.test"\npassword_env = "MC_TEST_UNSET_PW"\n'
        'smtp = { host = "127.0.0.1", port = 0, security = "starttls" }\n'
        '[[routes]]\nfrom = "a"\nto = ["nobody"]\n'
    )
    done = mailcanary("--config", str(bad), "probe")
    assert done.returncode == 78
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert any(line.startswith("accounts[0] (a).smtp.port:") for line in lines)
    assert any("MC_TEST_UNSET_PW is not set" in line for line in lines)
    assert any(line.startswith("routes[0].to[0]:") for line in lines)


def _rows(db: Path, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def test_verdict_verbs_agree_with_database(mailstack, configured):
    """The database holds the same typed verdict the CLI printed, for history and reports."""
    path, db = configured
    done = mailcanary(
        "--config", str(path), "probe", "--json", "--route", "to-spam-folders", "--deadline", "8s"
    )
    assert done.returncode == 1, done.stderr
    printed = {json.loads(line)["token"]: json.loads(line) for line in done.stdout.splitlines()}
    stored = _rows(db, "SELECT token, verdict, folder, folder_role, state FROM probes")
    assert {t: (v, f, r, s) for t, v, f, r, s in stored} == {
        t: (Verdict.SPAM.value, p["folder"], "spam", "final") for t, p in printed.items()
    }


def test_probe_nagios_before_typer_says_what_the_typer_command_says(mailstack, tmp_path):
    """The console script answers `probe --nagios` without typer (cli/entry.py, issue #17's
    one-shot cost); the line, stderr and exit code are the typer command's."""
    routes = [
        ("inbox", "alice", {"bob": Verdict.INBOX}),
        ("trouble", "alice", {"reject": Verdict.SEND_FAILED}),
    ]
    monitor = f'database = "sqlite:///{tmp_path}/mc.db"\nstate_dir = "{tmp_path}/state"\n'
    config = write_config(mailstack, tmp_path, routes=routes, monitor=monitor + 'deadline = "20s"')
    said = {}
    for via in ("entry", "app"):
        flags = ["-X", "importtime"] if via == "entry" else []
        code = f"import sys; from monitor.cli.{via} import main; sys.exit(main())"
        args = [sys.executable, *flags, "-c", code, "--config", str(config), "probe", "--nagios"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
        timed = [line for line in done.stderr.splitlines() if line.startswith("import time")]
        rest = [line for line in done.stderr.splitlines() if line not in timed]
        said[via] = (done.returncode, re.sub(r"=[\d.]+s;", "=Ns;", done.stdout), rest)
        if via == "entry":
            loaded = {line.rsplit("|", 1)[1].strip() for line in timed}
            # Nor rich's tracebacks, which structlog would load (monitor/__init__.py).
            assert not loaded & {"typer", "rich.traceback"} and "monitor.probe.oneshot" in loaded
    assert (
        said["entry"]
        == said["app"]
        == (
            2,
            "MAILCANARY CRITICAL - 1/2 inbox; send_failed: trouble:reject (rejected)"
            " | 'delivery_inbox:bob'=Ns;;;0; 'delivery_trouble:reject'=U;;;0;\n",
            [],
        )
    )
