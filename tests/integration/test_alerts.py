"""Alerting through real parts: the daemon, the mail stack, a real HTTP server for webhooks.

Wrong password and spam placement fire (email read back over IMAP, webhook signature
checked), the password fix resolves; a webhook that answers 503 gets the alert once, after
a retry; a daemon killed with -9 between firing and delivery delivers it once after restart.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import random
import signal
import subprocess
import sys
import threading
import urllib.request
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.alerts.channels import send_test_alerts
from monitor.config.load import load_config
from monitor.core.models import Verdict
from monitor.harness.demo import write_config
from tests.integration.support import REPO, free_port, rows, wait_for

pytestmark = pytest.mark.mailstack

HOOK_SECRET = "hook-secret-5f2e"


class HookServer:
    """A webhook receiver: records every POST; answers with `statuses` in turn, then 200."""

    def __init__(self, port: int = 0, statuses: list[int] | None = None, path: str = "/hook"):
        self.path = path
        self.requests: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with hook.lock:
                    status = hook.statuses.pop(0) if hook.statuses else 200
                    hook.requests.append(
                        {"headers": dict(self.headers), "body": body, "status": status}
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def accepted(self, route: str) -> list[dict[str, Any]]:
        """Bodies answered 2xx for alerts of `route`, each checked against its signature."""
        with self.lock:
            seen = list(self.requests)
        found = []
        for request in seen:
            body = request["body"]
            expected = hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert request["headers"]["X-Mailcanary-Signature"] == f"sha256={expected}"
            alert = json.loads(body)
            if request["status"] == 200 and alert["route"] == route:
                found.append(alert | {"delivery": request["headers"]["X-Mailcanary-Delivery"]})
        return found

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def config(stack, tmp_path: Path, routes: list, alerts: str, *, listen: str = "") -> Path:
    monitor = (
        f'database = "sqlite:///{tmp_path}/mc.db"\nstate_dir = "{tmp_path}/state"\n'
        f'interval = "2s"\ndeadline = "15s"\npoll_interval = "2s"\nlisten = "{listen}"\n'
    )
    path = write_config(stack, tmp_path, routes=routes, monitor=monitor)
    path.write_text(path.read_text() + "\n" + alerts)
    return path


def alert_mails(stack, route: str) -> list[EmailMessage]:
    return [
        message
        for raw in stack.list_messages("alice", "INBOX")
        if route
        in str((message := message_from_bytes(raw, policy=default))["X-Mailcanary-Delivery"])
    ]


def events(alerts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((a["kind"], a["event"]) for a in alerts)


def test_wrong_password_and_spam_fire_by_email_and_webhook_then_the_fix_resolves(
    mailstack, tmp_path, daemon
):
    suffix = random.randrange(10**6)  # the mailboxes are shared with other tests
    wrong, spam = f"wrong-pw-{suffix}", f"to-spam-{suffix}"
    hook = HookServer(statuses=[503])  # the first delivery fails: it must be retried, once
    port = free_port()
    alerts = (
        '[alerts]\nafter_failures = 2\nremind_every = "0"\n'
        '[[alerts.email]]\naccount = "alice"\nto = ["alice@example.test"]\n'
        f'[[alerts.webhook]]\nurl = "{hook.url}"\nsecret_env = "HOOK_SECRET"\n'
    )
    routes = [
        (wrong, "mallory", {"bob": Verdict.SEND_FAILED}),
        (spam, "alice", {"carol": Verdict.SPAM}),
    ]
    path = config(mailstack, tmp_path, routes, alerts, listen=f"127.0.0.1:{port}")
    d = daemon(path)
    d.env = {"HOOK_SECRET": HOOK_SECRET}
    try:
        d.start()
        fired = wait_for(
            lambda: len(hook.accepted(wrong)) == 1 and len(hook.accepted(spam)) == 1,
            60,
            "firing webhooks for the wrong password and the spam placement",
        )
        assert fired
        (auth,) = hook.accepted(wrong)
        (junk,) = hook.accepted(spam)
        # A wrong password fires on its first canary; spam after after_failures = 2.
        assert (auth["kind"], auth["event"], auth["consecutive_failures"]) == (
            "send_failed",
            "firing",
            1,
        )
        assert (auth["failure"]["code"], auth["failure"]["enhanced"]) == (535, "5.7.8")
        assert auth["failure"]["explanation"] and auth["failure"]["remedy"]
        assert auth["investigate"] == f"mailcanary history --route {wrong}"
        assert auth["mailbox"] == mailstack.users["bob"].email
        assert (junk["kind"], junk["consecutive_failures"]) == ("spam", 2)
        assert junk["canary"]["folder"] == "Junk" and junk["canary"]["verdict"] == "spam"
        # The 503 was retried with the same delivery id and accepted exactly once.
        refused = [r for r in hook.requests if r["status"] == 503]
        assert len(refused) == 1
        retried = refused[0]["headers"]["X-Mailcanary-Delivery"]
        assert [a["delivery"] for a in hook.accepted(wrong) + hook.accepted(spam)].count(
            retried
        ) == 1

        # The password is fixed: the next canary gets through and resolves the alert.
        (tmp_path / "secrets" / "wrong").write_text(mailstack.users["alice"].password + "\n")
        assert d.proc is not None
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(hook.accepted(wrong)) == 2, 60, "a resolved webhook")
        resolved = hook.accepted(wrong)[1]
        assert (resolved["event"], resolved["status"], resolved["canary"]["verdict"]) == (
            "resolved",
            "resolved",
            "inbox",
        )

        mails = wait_for(
            lambda: (
                len(m := alert_mails(mailstack, wrong)) == 2
                and len(alert_mails(mailstack, spam)) == 1
                and m
            ),
            30,
            "alert emails in the ops mailbox",
        )
        firing_mail = next(m for m in mails if "FIRING" in m["Subject"])
        assert any("RESOLVED" in m["Subject"] for m in mails)
        text = firing_mail.get_body(("plain",)).get_content()
        html = firing_mail.get_body(("html",)).get_content()
        assert "535 5.7.8" in text and auth["failure"]["remedy"] in text
        assert f"mailcanary history --route {wrong}" in text and "535 5.7.8" in html
        (spam_mail,) = alert_mails(mailstack, spam)
        assert 'folder "Junk"' in spam_mail.get_body(("plain",)).get_content()

        body = _get(f"http://127.0.0.1:{port}/metrics")
        firing = {
            (s.labels["route"], s.labels["kind"]): s.value
            for family in text_string_to_metric_families(body)
            for s in family.samples
            if s.name == "mailcanary_alert_firing"
        }
        assert firing[(spam, "spam")] == 1 and firing[(wrong, "send_failed")] == 0

        listed = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "--config", str(path), "alerts", "--json"],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, **d.env, "PYTHONPATH": str(REPO)},
            timeout=60,
        )
        shown = [json.loads(line) for line in listed.stdout.splitlines()]
        assert [(a["route"], a["kind"], a["status"]) for a in shown] == [(spam, "spam", "firing")]
        assert {x["status"] for x in shown[0]["deliveries"]} == {"sent"}

        assert d.signal(signal.SIGTERM) == 0
    finally:
        hook.stop()
    secrets = [mailstack.users["alice"].password, "not-the-password", HOOK_SECRET]
    everything = b"".join(r["body"] for r in hook.requests).decode() + d.log.read_text()
    everything += "".join(m.as_string() for m in alert_mails(mailstack, wrong))
    assert not [s for s in secrets if s in everything]
    assert "Traceback" not in d.log.read_text()


def test_an_alert_queued_before_kill_9_is_delivered_once_after_restart(mailstack, tmp_path, daemon):
    route = f"kill-9-{random.randrange(10**6)}"
    port = free_port()  # nobody listens yet: every delivery attempt is refused
    alerts = (
        '[alerts]\non = ["send_failed"]\nremind_every = "0"\n'
        f'[[alerts.webhook]]\nurl = "http://127.0.0.1:{port}/hook"\nsecret_env = "HOOK_SECRET"\n'
    )
    path = config(mailstack, tmp_path, [(route, "mallory", {"bob": Verdict.SEND_FAILED})], alerts)
    db = tmp_path / "mc.db"
    first = daemon(path)
    first.env = {"HOOK_SECRET": HOOK_SECRET}
    first.start()
    wait_for(
        lambda: rows(
            db,
            "SELECT 1 FROM alert_deliveries WHERE route=? AND status='pending' AND attempts>=1",
            route,
        ),
        60,
        "a firing alert whose delivery was tried and failed",
    )
    first.signal(signal.SIGKILL)

    hook = HookServer(port=port)
    try:
        second = daemon(path)
        second.env = {"HOOK_SECRET": HOOK_SECRET}
        second.start()
        wait_for(
            lambda: rows(
                db, "SELECT 1 FROM alert_deliveries WHERE route=? AND status='sent'", route
            ),
            60,
            "the queued alert to be delivered after the restart",
        )
        assert second.signal(signal.SIGTERM) == 0
    finally:
        hook.stop()
    delivered = hook.accepted(route)
    assert events(delivered) == [("send_failed", "firing")]
    # One row: tried and refused before the kill, sent once after the restart.
    ((event, status, attempts),) = rows(
        db, "SELECT event, status, attempts FROM alert_deliveries WHERE route=?", route
    )
    assert (event, status) == ("firing", "sent") and attempts >= 2


@pytest.mark.parametrize("source", ["inline", "credential"])
def test_the_webhook_url_never_reaches_the_log(mailstack, tmp_path, daemon, source):
    """`run` at its default level, a webhook whose path is a marker, one delivered alert:
    the marker is nowhere in the daemon's whole output (httpx logs URLs at INFO). The URL
    is written inline, or (with its signing secret) is a systemd credential as
    LoadCredential= hands it over: a file in $CREDENTIALS_DIRECTORY."""
    route = f"hook-url-{random.randrange(10**6)}"
    marker = f"R1HOOKPATH{random.randrange(10**9):09d}"
    hook = HookServer(path=f"/services/{marker}")
    env = {"HOOK_SECRET": HOOK_SECRET}
    if source == "inline":
        webhook = f'url = "{hook.url}"\nsecret_env = "HOOK_SECRET"\n'
    else:
        credentials = tmp_path / "credentials"
        credentials.mkdir(mode=0o700)
        (credentials / "hook-url").write_text(hook.url + "\n")
        (credentials / "hook-secret").write_text(HOOK_SECRET + "\n")
        env = {"CREDENTIALS_DIRECTORY": str(credentials)}
        webhook = 'url_credential = "hook-url"\nsecret_credential = "hook-secret"\n'
    alerts = '[alerts]\non = ["send_failed"]\nremind_every = "0"\n[[alerts.webhook]]\n' + webhook
    path = config(mailstack, tmp_path, [(route, "mallory", {"bob": Verdict.SEND_FAILED})], alerts)
    assert (marker in path.read_text()) == (source == "inline")  # else only the credential has it
    d = daemon(path)
    d.env = env
    try:
        d.start()
        wait_for(lambda: hook.accepted(route), 60, "the wrong password's alert at the webhook")
        # The daemon logs the delivery once the answer is in and recorded: a stop between the
        # two (as one loaded run did) would leave no line to check.
        delivered = '"event": "alert delivered"'
        wait_for(lambda: delivered in d.log.read_text(), 30, "the delivery in the daemon's log")
        assert d.signal(signal.SIGTERM) == 0
    finally:
        hook.stop()
    assert marker not in d.log.read_text()  # the delivery was logged, without the URL


async def test_test_alert_reports_every_channel_and_reaches_each(mailstack, tmp_path):
    hook = HookServer()
    dead = free_port()
    alerts = (
        '[[alerts.email]]\naccount = "alice"\nto = ["alice@example.test"]\n'
        f'[[alerts.webhook]]\nurl = "{hook.url}"\nsecret_env = "HOOK_SECRET"\n'
        f'[[alerts.webhook]]\nname = "dead"\nurl = "http://127.0.0.1:{dead}/x"\ntimeout = "2s"\n'
    )
    path = config(mailstack, tmp_path, [], alerts)
    cfg = load_config(path, {"HOOK_SECRET": HOOK_SECRET})
    try:
        results = await send_test_alerts(cfg)
    finally:
        hook.stop()
    by_channel = {channel: error for channel, _, error in results}
    assert by_channel["email:alice"] is None
    assert by_channel[f"webhook:127.0.0.1:{hook.port}"] is None
    assert by_channel["dead"] and f"{dead}/x" not in by_channel["dead"]
    alice_inbox = functools.partial(mailstack.list_messages, "alice", "INBOX")
    (request,) = hook.requests
    body = json.loads(request["body"])
    assert (body["event"], body["schema"]) == ("test", "mailcanary.alert.v1")
    expected = hmac.new(HOOK_SECRET.encode(), request["body"], hashlib.sha256).hexdigest()
    assert request["headers"]["X-Mailcanary-Signature"] == f"sha256={expected}"
    delivery = request["headers"]["X-Mailcanary-Delivery"].split("#")[0]

    def subjects() -> list[str]:
        # A long header is folded; unfolding leaves the fold's space in front.
        messages = [message_from_bytes(r, policy=default) for r in alice_inbox()]
        return [
            str(m["Subject"])
            for m in messages
            if str(m["X-Mailcanary-Delivery"]).strip().startswith(delivery)
        ]

    wait_for(subjects, 20, "the test alert email in the ops mailbox")
    assert subjects() == ["[mailcanary] TEST: mailcanary alert channel email:alice works"]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()
