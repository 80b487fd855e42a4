"""How long the weekly report takes to build over N probes (a benchmark, not a test).

    python bench/report.py --rows 10000000
    python bench/report.py --rows 10000000 --database postgresql://mc@127.0.0.1:5433/mc --reset

Fills a database migrated to head (so the rollup triggers run on every insert, as they do
when the daemon finishes a probe) with N synthetic final probes: 20 routes from four
sending accounts to 60 mailboxes at five providers, log-normal delivery times, realistic row
widths, Authentication-Results as each provider writes them, spam-filter headers where
one writes them (SpamAssassin at GMX and the own server, Microsoft at Outlook), and the
correlated incidents a report must make plain in the last full week: Gmail starts filing to
spam on Wednesday noon (DMARC failing on 40 % of those), Outlook loses everything for three
hours on Thursday, one sending account has a wrong password for five hours on Tuesday (535
5.7.8 on each of its canaries), and Yahoo's DMARC fails on 30 % throughout (DKIM passes,
signed by the ESP's domain, not aligned). Background noise: greylisting (451 4.7.1), a blocklist
refusal (550 5.7.1), IMAP logins refused and connections lost, late and missing canaries,
with the failure kinds and phases the catalogue produces. By default each
mailbox gets a canary every 5 minutes (`--interval`), so N probes reach back N/60 × 5 min
and the report reads the last two weeks of them. `--weeks 2` packs all N into the two weeks
the report compares instead: the worst case, every row counted. `--instances 2` has two
daemons take turns at the slots (a round of canaries each), as an HA pair does. Then it
builds the report of the last full week (UTC) and prints the time, then the same report
split by instance and one of the first instance only, ending with one JSON line:
{"rows": N, "database": "sqlite|postgresql", "instances": K, "report_seconds": S,
 "by_instance_seconds": S, "one_instance_seconds": S}.
Without --database the SQLite file goes to a temporary directory, removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from monitor.adapters.report_tables import RollupRow
from monitor.adapters.store import Store, make_engine
from monitor.reports.charts import draw_charts
from monitor.reports.document import Mailbox
from monitor.reports.export import render_json
from monitor.reports.html import render_html
from monitor.reports.model import last_full_week
from monitor.reports.query import build_report
from monitor.reports.text import render_text

END = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday: the data ends where a week ends
PROVIDERS = (  # name, domain, spam share
    ("Gmail", "gmail.com", 0.004),  # until it starts filing to spam: see probes()
    ("Outlook", "outlook.com", 0.04),
    ("Yahoo", "yahoo.com", 0.03),
    ("GMX", "gmx.de", 0.02),
    ("own", "example.org", 0.005),
)
COLUMNS = (
    "token route sender recipient slot planned_at deadline_at message_id instance state "
    "smtp_phase smtp_code smtp_enhanced smtp_message queue_id tls_version handoff_at verdict "
    "failure failure_phase failure_transient failure_message failure_code failure_enhanced "
    "folder folder_role arrived_at arrival_source delivery_seconds finished_at auth_results "
    "spam_headers"
).split()
AUTHSERV = {  # the authserv-id each provider writes
    "Gmail": "mx.google.com",
    "Outlook": "spf.protection.outlook.com",
    "Yahoo": "atlas-production.v2.mail.yahoo.com",
    "GMX": "gmx.net",
    "own": "mx.example.org",
}
# (kind, phase, transient, server text, code, enhanced) as the catalogue classifies them
WRONG_PASSWORD = (
    "auth_failed", "auth", False, "5.7.8 Username and Password not accepted. For more "
    "information, go to https://support.google.com/mail/?p=BadCredentials", 535, "5.7.8",
)  # fmt: skip
NOISE = (  # send_failed, then check_failed
    ("deferred", "rcpt_to", True, "4.7.1 <seed>: Recipient address rejected: Greylisted, "
     "see https://postgrey.schweikert.ch/help/example.org.html", 451, "4.7.1"),
    ("rejected", "rcpt_to", False, "5.7.1 Service unavailable; Client host [192.0.2.25] "
     "blocked using zen.spamhaus.org", 550, "5.7.1"),
    ("connect_failed", "connect", True, "[Errno 111] Connection refused", None, None),
    ("auth_failed", "imap_auth", False, "NO [AUTHENTICATIONFAILED] Authentication failed.",
     None, None),
    ("connection_lost", "imap_select", True, "connection lost while waiting for a reply",
     None, None),
)  # fmt: skip


def auth_results(provider: str, domain: str, spf: str, dkim: str, dmarc: str) -> str:
    """Authentication-Results as monitor.core.receipt.auth_json stores them."""
    signed_by = "example.org" if dmarc == "pass" else "esp-mailer.net"  # unaligned: DMARC fails
    other = {"compauth": "pass" if dmarc == "pass" else "fail"} if provider == "Outlook" else {}
    return json.dumps(
        {
            "authserv_id": AUTHSERV[provider],
            "spf": {"result": spf, "domain": "example.org", "selector": None},
            "dkim": [{"result": dkim, "domain": signed_by, "selector": "s1"}],
            "dmarc": {"result": dmarc, "domain": "example.org", "selector": None},
            "arc": None,
            "other": other,
        }
    )


def spam_headers(provider: str, verdict: str) -> str | None:
    """Spam-filter headers as monitor.core.receipt.spam_json stores them: SpamAssassin's
    status and report at GMX and the own server, Microsoft's at Outlook, none elsewhere."""
    spam = verdict == "spam"
    if provider == "Outlook":
        scl = 6 if spam else 1
        sfv = "SPM" if spam else "NSPM"
        return json.dumps(
            {
                "x-forefront-antispam-report": f"CIP:192.0.2.25;CTRY:GR;LANG:en;SCL:{scl};"
                f"SRV:;IPV:NLI;SFV:{sfv};H:mail.example.org;PTR:mail.example.org;CAT:NONE;"
                "SFS:(13230040)(4636009)(376014)(82310400026);DIR:INB;",
                "x-ms-exchange-organization-scl": str(scl),
                "x-microsoft-antispam": "BCL:0;ARA:13230040|376014|82310400026;",
            }
        )
    if provider not in ("GMX", "own"):
        return None
    rules = [
        (-0.1, "DKIM_VALID", "Message has at least one valid DKIM or DK signature"),
        (-0.1, "DKIM_VALID_AU", "Message has a valid DKIM or DK signature from author's domain"),
        (-0.0, "SPF_PASS", "SPF: sender matches SPF record"),
        (0.0, "HTML_MESSAGE", "BODY: HTML included in message"),
    ]
    if spam:
        rules += [
            (1.7, "HTML_IMAGE_ONLY_24", "BODY: HTML: images with 2000-2400 bytes of words"),
            (2.6, "DEAR_FRIEND", "BODY: Dear Friend? That's not very dear!"),
            (1.1, "MIME_HTML_ONLY", "BODY: Message only has text/html MIME parts"),
        ]
    score = round(sum(p for p, _, _ in rules), 1)
    return json.dumps(
        {
            "x-spam-checker-version": "SpamAssassin 4.0.1 (2024-03-25) on mx.example.org",
            "x-spam-flag": "YES" if spam else "NO",
            "x-spam-level": "*" * max(int(score), 0),
            "x-spam-status": f"{'Yes' if spam else 'No'}, score={score} required=5.0 "
            f"tests={','.join(n for _, n, _ in rules)} autolearn=disabled version=4.0.1",
            "x-spam-report": " ".join(f"* {p:4.1f} {n} {d}" for p, n, d in rules),
        }
    )


def pairs(count: int) -> list[tuple[str, str, str, str]]:
    """(route, recipient, provider, domain): routes of three mailboxes each."""
    out = []
    for i in range(count):
        provider, domain, _ = PROVIDERS[i % len(PROVIDERS)]
        out.append((f"route-{i // 3:02d}", f"seed-{i:02d}", provider, domain))
    return out


def probes(
    n: int,
    span: float,
    mailboxes: list[tuple[str, str, str, str]],
    seed: int,
    instances: list[str],
) -> Iterator[tuple]:
    rng = random.Random(seed)
    start = END - timedelta(seconds=span)
    spam_share = {p[0]: p[2] for p in PROVIDERS}
    week = END - timedelta(days=7)  # the last full week: Monday 00:00 UTC
    gmail_spam_from = week + timedelta(days=2, hours=12)
    outage = (week + timedelta(days=3, hours=13), week + timedelta(days=3, hours=16))
    wrong_password = (week + timedelta(days=1, hours=9), week + timedelta(days=1, hours=14))
    imap_refused = (week + timedelta(days=4, hours=8), week + timedelta(days=4, hours=10))
    auth_cache: dict[tuple[str, str, str, str, str], str] = {}
    spam_cache: dict[tuple[str, str], str | None] = {}
    for i in range(n):
        route, recipient, provider, domain = mailboxes[i % len(mailboxes)]
        sender = f"sender-{int(route[-2:]) % 4}"
        planned = start + timedelta(seconds=span * i / n)
        handoff = planned + timedelta(seconds=1.2)
        roll = rng.random()
        spam = spam_share[provider]
        if provider == "Gmail" and planned >= gmail_spam_from:
            spam = 0.09
        verdict, seconds, failure, auth = "inbox", None, None, None
        if sender == "sender-1" and wrong_password[0] <= planned < wrong_password[1]:
            verdict, failure = "send_failed", WRONG_PASSWORD
        elif provider == "Outlook" and outage[0] <= planned < outage[1]:
            verdict = "missing"
        elif recipient == "seed-07" and imap_refused[0] <= planned < imap_refused[1]:
            verdict, failure = "check_failed", NOISE[3]  # its password changed, then fixed
        elif roll < 0.004:
            # The blocklist refusal is one sending IP's (sender-2's) at Outlook; greylisting
            # and refused connections hit anyone now and then.
            blocked = sender == "sender-2" and provider == "Outlook"
            verdict, failure = "send_failed", NOISE[1 if blocked else 2 * (int(roll * 1e4) % 2)]
        elif roll < 0.006:
            verdict, failure = "check_failed", NOISE[4]
        elif roll < 0.015:
            verdict = "missing"
        elif roll < 0.017:
            verdict, seconds = "late", 600 + rng.expovariate(1 / 900)
        elif roll < 0.017 + spam:
            verdict = "spam"
        if verdict in ("inbox", "spam"):
            seconds = rng.lognormvariate(math.log(4.0), 0.9)
        if seconds is not None:
            dmarc = "pass"
            if provider == "Yahoo" and rng.random() < 0.3:
                dmarc = "fail"
            elif verdict == "spam" and provider == "Gmail" and rng.random() < 0.4:
                dmarc = "fail"
            spf = "softfail" if rng.random() < 0.002 else "pass"
            key = (provider, domain, spf, "pass", dmarc)
            auth = auth_cache.get(key) or auth_cache.setdefault(key, auth_results(*key))
        sent = failure is None or verdict != "send_failed"
        arrived = handoff + timedelta(seconds=seconds) if seconds is not None else None
        yield (
            f"{i:020d}.{int(planned.timestamp())}.bench",
            route,
            sender,
            recipient,
            planned,
            planned,
            planned + timedelta(minutes=10),
            f"<{i}.canary@example.org>",
            instances[i // len(mailboxes) % len(instances)],
            "final",
            "done" if sent else failure[1],
            250 if sent else failure[4],
            "2.0.0" if sent else failure[5],
            "2.0.0 Ok: queued as 4XyZ" if sent else failure[3],
            "4XyZ1234",
            "TLSv1.3",
            handoff,
            verdict,
            *(failure[:4] if failure else (None, None, None, None)),
            *(failure[4:] if failure else (None, None)),
            None if seconds is None else ("INBOX" if verdict != "spam" else "Junk"),
            None if seconds is None else ("inbox" if verdict != "spam" else "spam"),
            arrived,
            None if seconds is None else "detected",
            seconds,
            planned + timedelta(minutes=1),
            auth,
            None
            if seconds is None
            else spam_cache.setdefault((provider, verdict), spam_headers(provider, verdict)),
        )


def _sqlite_text(value: object) -> object:
    # The store's format for SQLite: naive UTC text with microseconds (UTCDateTime).
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def fill_sqlite(path: str, rows: Iterator[tuple], batch: int = 50_000) -> None:
    placeholders = ", ".join("?" for _ in COLUMNS)
    statement = f"INSERT INTO probes ({', '.join(COLUMNS)}) VALUES ({placeholders})"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA synchronous=OFF")
        chunk = []
        for row in rows:
            chunk.append(tuple(_sqlite_text(v) for v in row))
            if len(chunk) == batch:
                db.executemany(statement, chunk)
                db.commit()  # one huge transaction would hold every page in the WAL
                chunk.clear()
        db.executemany(statement, chunk)


async def fill_postgresql(url: str, rows: Iterator[tuple], batch: int = 50_000) -> None:
    import asyncpg

    target = make_url(url)
    db = await asyncpg.connect(
        host=target.host,
        port=target.port,
        user=target.username,
        password=target.password,
        database=target.database,
    )
    try:
        chunk = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == batch:
                await db.copy_records_to_table("probes", records=chunk, columns=COLUMNS)
                chunk.clear()
        if chunk:
            await db.copy_records_to_table("probes", records=chunk, columns=COLUMNS)
        await db.execute("ANALYZE")
    finally:
        await db.close()


async def fill(url: str, rows: Iterator[tuple], count: int) -> None:
    """`rows` into the probes of `url`, saying how long it took."""
    began = time.perf_counter()
    if make_url(url).get_backend_name() == "sqlite":
        await asyncio.to_thread(fill_sqlite, make_url(url).database or "", rows)
    else:
        await fill_postgresql(url, rows)
    print(f"filled {count} probes in {time.perf_counter() - began:.1f}s", flush=True)


async def reset(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as db:
        await db.execute(
            text(
                "DROP TABLE IF EXISTS report_sends, probe_rollup, alert_deliveries, alerts, "
                "probes, alembic_version CASCADE"
            )
        )
        await db.execute(text("DROP FUNCTION IF EXISTS probe_rollup_apply() CASCADE"))
    await engine.dispose()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--database", help="a PostgreSQL or SQLite URL (default: a temp SQLite)")
    parser.add_argument("--interval", type=float, default=300.0, help="seconds between canaries")
    parser.add_argument("--weeks", type=float, help="put all rows in this span instead")
    parser.add_argument("--mailboxes", type=int, default=60)
    parser.add_argument("--instances", type=int, default=1, help="daemons taking turns")
    parser.add_argument("--reset", action="store_true", help="drop mailcanary's tables first")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--html", type=Path, help="also write the report as HTML to look at")
    args = parser.parse_args()

    scratch = None
    url = args.database
    if url is None:
        scratch = tempfile.mkdtemp(prefix="mailcanary-bench-")
        url = f"sqlite:///{scratch}/bench.db"
    backend = make_url(url).get_backend_name()
    backend = "postgresql" if backend == "postgres" else backend
    try:
        if args.reset:
            await reset(url)
        store = await Store.open(url)
        await store.upgrade()
        await store.close()
        mailboxes = pairs(args.mailboxes)
        span = args.weeks * 7 * 86400 if args.weeks else args.rows / len(mailboxes) * args.interval
        names = ["default"] if args.instances == 1 else [f"site-{k}" for k in range(args.instances)]
        rows = probes(args.rows, span, mailboxes, args.seed, names)
        await fill(url, rows, args.rows)

        engine = make_engine(url)
        async with engine.connect() as db:
            rollup = (await db.execute(select(func.count()).select_from(RollupRow))).scalar_one()
        now = END + timedelta(hours=8)
        period = last_full_week(now, "UTC")
        shown = {to: Mailbox(provider, f"{to}@{domain}") for _, to, provider, domain in mailboxes}
        senders = {route: f"sender-{int(route[-2:]) % 4}" for route, _, _, _ in mailboxes}
        configured = [(route, to) for route, to, _, _ in mailboxes]
        variants: list[dict[str, Any]] = [{}, {"by_instance": True}, {"instances": names[:1]}]
        timings, reports = [], []
        for options in variants:
            began = time.perf_counter()
            reports.append(
                await build_report(
                    Store(engine),
                    period,
                    mailboxes=shown,
                    configured=configured,
                    now=now,
                    senders=senders,
                    **options,
                )
            )
            timings.append(time.perf_counter() - began)
        seconds, split, one = timings
        report = reports[0]  # the whole fleet's
        await engine.dispose()
        began = time.perf_counter()
        for render in (render_text, render_json):
            render(report)
        charts = draw_charts(report)
        page = render_html(report, {k: _data_uri(v) for k, v in charts.items()})
        rendered = time.perf_counter() - began
        if args.html is not None:
            args.html.write_text(page, encoding="utf-8")
        print(f"{report.headline.state}: {report.headline.text}")
        for fix in report.fixes[:6]:
            print(f"  [{fix.severity}] {fix.text[:150]}")
        counted = report.total.tally.total + report.total.previous.total
        print(f"rollup rows: {rollup}; probes in the two weeks compared: {counted}")
        print(
            f"report of {period.label} built in {seconds:.2f}s; "
            f"rendered (with charts) in {rendered:.2f}s; split by instance in {split:.2f}s; "
            f"of {names[0]} only in {one:.2f}s"
        )
        figures = {"rows": args.rows, "database": backend, "instances": len(names)}
        figures |= {"report_seconds": round(seconds, 3), "by_instance_seconds": round(split, 3)}
        print(json.dumps(figures | {"one_instance_seconds": round(one, 3)}))
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
