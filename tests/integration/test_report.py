"""The report through real parts: the rollup kept by the database's triggers (SQLite and the
harness's private PostgreSQL), `mailcanary report` run as a command and
its HTML, JSON and CSV read back, and the weekly email sent through the real mail stack by
the real scheduler, received over IMAP, never sent twice."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import text

from monitor.adapters import posture_log
from monitor.adapters.alertstore import AlertStore, Outgoing
from monitor.adapters.reportstore import ReportStore
from monitor.adapters.store import Store
from monitor.alerts.message import describe
from monitor.alerts.state import AlertKind, AlertState, Event, Status, Transition
from monitor.config.load import load_config
from monitor.core.durations import parse_duration
from monitor.core.models import (
    Decision,
    PlannedProbe,
    Verdict,
)
from monitor.dnscheck.policy import FAIL, Finding
from monitor.harness.demo import write_config
from monitor.reports.charts import CHARTS
from monitor.reports.model import EDGES, bucket_bounds
from monitor.reports.weekly import Reporting
from tests.integration.support import wait_for
from tests.integration.test_report_support import (
    ATHENS,
    IMAP_AUTH,
    REFUSED,
    WEEK,
    Cells,
    mailcanary,
    record,
    report_config,
    report_store,  # noqa: F401 - the `store` fixture: a test on SQLite and on PostgreSQL
    rollup_matches_probes,
    sighting,
)

PNG = b"\x89PNG\r\n\x1a\n"


async def test_the_rollup_follows_every_write_to_probes(store: Store) -> None:
    at = WEEK.start + timedelta(minutes=7)
    # Every bucket: a value inside it and one exactly on its lower edge (ties go up, as in
    # bisect_right): the triggers' frozen edges must be the core's, to the last bit.
    values = [(low + high) / 2 if high else low * 3 for low, high in map(bucket_bounds, range(96))]
    for n, seconds in enumerate([*values, *EDGES]):
        await record(store, n, at + timedelta(seconds=n), Verdict.INBOX, seconds=seconds)
    spam = await record(
        store, 1000, at + timedelta(minutes=5), Verdict.SPAM, seconds=4.2, dmarc="fail"
    )
    await record(store, 1001, at + timedelta(minutes=6), Verdict.SEND_FAILED, failure=REFUSED)
    lost = await record(store, 1002, at + timedelta(hours=1), Verdict.MISSING)
    await record(store, 1003, at + timedelta(minutes=7), Verdict.CHECK_FAILED, failure=IMAP_AUTH)
    unfinished = at + timedelta(minutes=8)
    await store.plan(
        PlannedProbe("unfinished.1.mac", "seeds", "alice", "g", *[unfinished] * 3, "<u@example>")
    )
    assert await rollup_matches_probes(store) == 96 + 4  # edges share their bucket's row

    # A missing canary turns up late: it moves from missing to late, with its time.
    late = sighting(lost, 77, Verdict.INBOX, 1234.0, "pass")
    assert await store.mark_late(lost.token, Decision(Verdict.LATE, delivery_seconds=1234.0), late)
    async with store.engine.begin() as db:
        await db.execute(text("DELETE FROM probes WHERE token = :t"), {"t": spam.token})
    await rollup_matches_probes(store)
    async with store.engine.connect() as db:
        verdicts = (
            await db.execute(text("SELECT verdict, sum(n) FROM probe_rollup GROUP BY verdict"))
        ).all()
    assert dict(verdicts) == {"inbox": 191, "send_failed": 1, "late": 1, "check_failed": 1}


# -- the week both tests below report on ------------------------------------------------------


async def fill_week(store: Store, route: str, gmail: str, outlook: str) -> None:
    """Gmail: 20 in the inbox (1..20 s), 10 in spam with DMARC failed (30 s); Outlook: 8 in
    the inbox, one refused with 550 5.7.1, one missing; the week before: Gmail all inbox."""
    step = (WEEK.end - WEEK.start) / 40
    for i in range(20):
        await record(
            store, i, WEEK.start + i * step, Verdict.INBOX, route=route, to=gmail, seconds=i + 1.0
        )
    for i in range(20, 30):
        at = WEEK.start + i * step
        await record(store, i, at, Verdict.SPAM, route=route, to=gmail, seconds=30.0, dmarc="fail")
    for i in range(30, 38):
        await record(
            store, i, WEEK.start + i * step, Verdict.INBOX, route=route, to=outlook, seconds=2.0
        )
    await record(
        store,
        38,
        WEEK.start + 38 * step,
        Verdict.SEND_FAILED,
        route=route,
        to=outlook,
        failure=REFUSED,
    )
    await record(store, 39, WEEK.start + 39 * step, Verdict.MISSING, route=route, to=outlook)
    before = WEEK.previous().start
    for i in range(10):
        at = before + timedelta(hours=10 * i)
        await record(store, 100 + i, at, Verdict.INBOX, route=route, to=gmail, seconds=5.0)


async def record_alerts(store: Store) -> None:
    """Two episodes of one alert, written as alerting writes them: the first, fired and
    resolved on Monday, survives only in the outbox; the second, still firing, is the state."""
    alerts = AlertStore(store.engine)
    first = AlertState("seeds", "o", AlertKind.SEND_FAILED, Status.FIRING, seq=1)
    first = replace(first, fired_at=WEEK.start + timedelta(hours=5))
    resolved = replace(first, status=Status.RESOLVED, resolved_at=WEEK.start + timedelta(hours=7))
    second = replace(resolved, status=Status.FIRING, fired_at=WEEK.start + timedelta(days=6))
    steps = [(first, Event.FIRING), (replace(resolved, seq=2), Event.RESOLVED)]
    steps.append((replace(second, seq=3), Event.FIRING))
    for version, (state, event) in enumerate(steps):
        at = state.resolved_at if event is Event.RESOLVED else state.fired_at
        assert at is not None
        move = Transition(event, state, at)
        alert = describe(move, mailbox="seed@outlook.com", instance="default")
        email = Outgoing(move.id, "email:alice", "ops@example.org", event.value, alert)
        await alerts.commit([(version or None, state)], [email], at)


def report_command(config: Path, fmt: str, output: Path) -> None:
    args = ["report", "--from", "2026-10-19", "--to", "2026-10-25", "--format", fmt]
    done = mailcanary(config, *args, "--output", str(output))
    assert done.returncode == 0, done.stderr


async def test_report_command_writes_html_json_csv_and_text_with_the_same_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = report_config(tmp_path, f"sqlite:///{tmp_path}/mc.db")
    monkeypatch.setenv("PW", "not-used")
    store = await Store.open(load_config(config).monitor.database)
    await store.upgrade()
    await fill_week(store, "seeds", "g", "o")
    await record_alerts(store)
    await store.close()

    # The daemon's weekly DNS run before the week, as kept in the state directory.
    earlier = WEEK.start - timedelta(days=1)
    listed = Finding("dnsbl", "203.0.113.9", FAIL, "listed on zen.spamhaus.org")
    assert posture_log.record(tmp_path / "state", earlier, {"alice": [listed]})

    for fmt in ("html", "json", "csv", "text"):
        await asyncio.to_thread(report_command, config, fmt, tmp_path / f"report.{fmt}")

    page = Cells()
    page.feed((tmp_path / "report.html").read_text())
    gmail = page.rows[("data-route=seeds", "data-recipient=g")]
    outlook = page.rows[("data-route=seeds", "data-recipient=o")]
    total = page.rows[("data-total=1",)]
    assert (gmail["canaries"], gmail["inbox"], gmail["spam"]) == ("30", "20 (67%)", "10 (33%)")
    assert (gmail["max"], gmail["inbox_rate_trend"]) == ("30s", "↓ -33.3 pp")
    assert parse_duration(gmail["p50"]) == pytest.approx(15.0, rel=0.1)  # the exact median
    assert (outlook["canaries"], outlook["inbox"]) == ("10", "8 (80%)")
    assert (outlook["send_failed"], outlook["missing"]) == ("1 (10%)", "1 (10%)")
    assert (total["canaries"], total["inbox"], total["spam"]) == ("40", "28 (70%)", "10 (25%)")
    sunday = page.rows[("data-date=2026-10-25",)]
    assert int(sunday["canaries"]) == sum(
        1
        for i in range(40)
        if WEEK.start + i * (WEEK.end - WEEK.start) / 40 >= WEEK.end - timedelta(hours=25)
    )
    assert len(page.images) == len(CHARTS)
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)

    document = json.loads((tmp_path / "report.json").read_text())
    assert document["schema"] == "mailcanary.report/1"
    # Top to bottom: the verdict, the worst provider first, the check that explains spam,
    # eight weeks of trend, the sending account's DNS as checked by the command.
    assert document["headline"]["state"] == "red"
    assert document["headline"]["text"].startswith("Gmail / Google Workspace: 33% to spam")
    assert document["providers"][0]["provider"] == "Gmail / Google Workspace"
    causes = document["authentication"]["spam_causes"]
    assert causes["Gmail / Google Workspace"]["check"] == "dmarc"
    assert [w["canaries"] for w in document["weeks"]][-2:] == [
        document["total"]["previous"]["canaries"],
        40,
    ]
    assert len(document["weeks"]) == 8
    assert [d["account"] for d in document["dns"]] == ["alice"]
    [alice] = document["dns"]
    assert alice["compared_with"] == earlier.isoformat()
    gone = {"check": "dnsbl", "target": "203.0.113.9", "was": "fail", "now": None}
    assert gone in alice["changes"]
    assert (document["period"]["hours"], document["timezone"]) == (169, ATHENS)
    assert [d["hours"] for d in document["days"]] == [24] * 6 + [25]
    assert document["total"]["counts"]["inbox"] == 28 and document["total"]["canaries"] == 40
    providers = {p["provider"]: p for p in document["providers"]}
    gmail_json = providers["Gmail / Google Workspace"]["mailboxes"][0]["summary"]
    assert gmail_json["rates"]["spam"] == pytest.approx(1 / 3)
    assert gmail_json["dmarc_failed"] == {"spam": 10}
    assert gmail_json["previous"]["counts"]["inbox"] == 10
    # Delivery times: per mailbox in both weeks, and per day, from the same rollup rows.
    assert gmail_json["delivery"]["count"] == 30 and gmail_json["delivery"]["max"] == 30.0
    earlier = gmail_json["previous"]["delivery"]  # all ten took 5 s
    assert (earlier["count"], earlier["max"]) == (10, 5.0)
    assert earlier["p50"] == pytest.approx(5.0, rel=0.03) and earlier["p50"] <= earlier["p95"] <= 5
    assert sum(d["delivery"]["count"] for d in document["days"]) == 38
    assert gmail_json["trend"]["inbox_rate"]["better"] is False
    refused = document["failures"][0]
    assert (refused["smtp_code"], refused["smtp_enhanced"], refused["count"]) == (550, "5.7.1", 1)
    assert refused["explanation"] and refused["remedy"]
    assert document["incidents_available"] is True
    assert [
        (i["kind"], i["fired_at"], i["duration_seconds"], i["open"]) for i in document["incidents"]
    ] == [
        ("send_failed", (WEEK.start + timedelta(hours=5)).isoformat(), 7200.0, False),
        ("send_failed", (WEEK.start + timedelta(days=6)).isoformat(), 25 * 3600.0, True),
    ]
    fixes = [f["text"] for f in document["what_to_fix"]]
    spam = "Gmail / Google Workspace placed 33% of 30 canaries in spam (was 0.0%)"
    assert f"{spam}; DMARC failed on 10 of these 10." in fixes
    still = "Alert still firing: send_failed on seeds → o since Sun 25 Oct 00:00 EEST"
    still += " (Sat 21:00 UTC)."
    assert still in fixes

    rows = list(csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text())))
    assert [r["level"] for r in rows] == ["mailbox", "provider", "mailbox", "provider", "total"]
    assert (rows[-1]["canaries"], rows[-1]["inbox"], rows[-1]["send_failed"]) == ("40", "28", "1")
    assert float(rows[-1]["inbox_rate"]) == pytest.approx(0.7)
    text_report = (tmp_path / "report.text").read_text()
    assert "2026-10-19 – 2026-10-25 (Europe/Athens, 169 hours)" in text_report
    assert "Total: 40 canaries, inbox 70%" in text_report


# -- the scheduled email ----------------------------------------------------------------------


@pytest.mark.mailstack
async def test_the_weekly_email_arrives_once_with_its_charts_inline(
    mailstack, tmp_path: Path
) -> None:
    bob, alice = mailstack.users["bob"], mailstack.users["alice"]
    monitor = f'database = "sqlite:///{tmp_path}/mc.db"\nstate_dir = "{tmp_path}/state"\n'
    path = write_config(
        mailstack,
        tmp_path,
        routes=[("to-inboxes", "alice", {"bob": Verdict.INBOX})],
        monitor=monitor,
    )
    base = path.read_text()
    reports = f'\n[reports]\nweekly = "mon 08:00"\ntimezone = "{ATHENS}"\nto = ["{bob.email}"]\n'
    path.write_text(base + reports + 'account = "mallory"\n')  # a wrong password first
    refused = load_config(path)
    path.write_text(base + reports + 'account = "alice"\n')
    cfg = load_config(path)
    store = await Store.open(cfg.monitor.database)
    await store.upgrade()
    await fill_week(store, "to-inboxes", "bob", "carol")
    sends = ReportStore(store.engine)
    now = [datetime(2026, 10, 26, 6, 0, tzinfo=UTC)]  # Monday 08:00 in Athens: WEEK is due
    clock = lambda: now[0]  # noqa: E731
    try:
        # The send fails: recorded, and not retried before its backoff is over.
        failing = Reporting(refused, store, clock=clock)
        [(to, error)] = await failing.tick()
        assert to == bob.email and error and "auth" in error
        assert await failing.tick() == []
        # After a restart with the password fixed, the real scheduler sends it at start.
        now[0] += timedelta(minutes=6)
        scheduler = AsyncIOScheduler(timezone="UTC")
        sent_now = asyncio.Event()
        fixed = Reporting(cfg, store, clock=clock, on_result=lambda _, __, e: e or sent_now.set())
        await fixed.start(scheduler, first_in=0.1)
        scheduler.start()
        try:
            async with asyncio.timeout(60):
                await sent_now.wait()
        finally:
            scheduler.shutdown(wait=False)
        # Another restart: the week's report is not sent again.
        assert await Reporting(cfg, store, clock=clock).tick() == []
        [sent] = await sends.sends(WEEK)
        assert (sent.status, sent.attempts, sent.last_error) == ("sent", 2, None)
    finally:
        await store.close()

    def delivered() -> list:
        messages = [
            message_from_bytes(raw, policy=default)
            for raw in mailstack.list_messages("bob", "INBOX")
        ]
        return [m for m in messages if m["Message-ID"] == sent.message_id]

    [message] = await asyncio.to_thread(wait_for, delivered, 30, "the weekly report in bob's INBOX")
    assert message["From"].addresses[0].addr_spec == alice.email
    assert message["Subject"] == "mailcanary report 2026-10-19 – 2026-10-25: inbox 70% (↓ -30.0 pp)"
    assert message.get_content_type() == "multipart/alternative"
    plain, related = message.iter_parts()
    assert plain.get_content_type() == "text/plain" and "Total: 40 canaries" in plain.get_content()
    html, *images = related.iter_parts()
    assert html.get_content_type() == "text/html"
    assert [i.get_content_type() for i in images] == ["image/png"] * len(CHARTS)
    assert all(i.get_content().startswith(PNG) for i in images)
    # Inline, not attachments: clients would list them as attachments as well.
    assert [i.get_content_disposition() for i in images] == ["inline"] * len(CHARTS)
    cids = {i["Content-ID"].strip("<>") for i in images}
    page = Cells()
    page.feed(html.get_content())
    assert {src.removeprefix("cid:") for src in page.images} == cids and len(cids) == len(CHARTS)
    assert page.rows[("data-total=1",)]["canaries"] == "40"
