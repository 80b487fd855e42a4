"""The HTTP endpoint over a real socket: /metrics as Prometheus parses it, /healthz, bad clients."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.core.models import (
    Decision,
    Failure,
    Phase,
    PlannedProbe,
    ProbeRecord,
    Role,
    SendOutcome,
    SmtpReply,
    Verdict,
)
from monitor.daemon.http import Server, parse_listen, serve
from monitor.daemon.metrics import Metrics

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
READ_TIMEOUT = 0.5


def sent(*codes: tuple[Phase, int], failure: Failure | None = None) -> SendOutcome:
    replies = tuple(SmtpReply(phase, code, None, "text") for phase, code in codes)
    if failure is not None:
        return SendOutcome(phase=replies[-1].phase, replies=replies, failure=failure)
    return SendOutcome(Phase.DONE, replies, handoff_at=T0, handoff_monotonic=1.0)


GOOD = ((Phase.GREETING, 220), (Phase.EHLO, 250), (Phase.MAIL_FROM, 250), (Phase.DATA, 250))


def record(
    probe_id: int,
    route: str,
    recipient: str,
    verdict: Verdict,
    minutes: int,
    delivery: float | None = None,
    send: SendOutcome | None = None,
) -> ProbeRecord:
    planned_at = T0 + timedelta(minutes=minutes)
    planned = PlannedProbe(
        token=f"token{probe_id}",
        route=route,
        sender="relay",
        recipient=recipient,
        slot=planned_at,
        planned_at=planned_at,
        deadline_at=planned_at + timedelta(minutes=10),
        message_id=f"<{probe_id}@test>",
    )
    arrived = planned_at + timedelta(seconds=delivery) if delivery is not None else None
    role = {Verdict.INBOX: Role.INBOX, Verdict.SPAM: Role.SPAM}.get(verdict)
    decision = Decision(verdict, role=role, arrived_at=arrived, delivery_seconds=delivery)
    finished = planned_at + timedelta(minutes=1)
    return ProbeRecord(probe_id, planned, "final", send or sent(*GOOD), None, decision, finished)


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[Server, Metrics, dict[str, Any]]]:
    metrics = Metrics()
    health: dict[str, Any] = {"ok": True, "details": {"scheduler": "running"}}
    server = await serve(
        "127.0.0.1:0",
        metrics,
        lambda: (health["ok"], health["details"]),
        read_timeout=READ_TIMEOUT,
    )
    try:
        yield server, metrics, health
    finally:
        await server.close()


async def get(server: Server, path: str, method: str = "GET") -> tuple[int, str, bytes]:
    def fetch() -> tuple[int, str, bytes]:
        url = f"http://127.0.0.1:{server.port}{path}"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as r:
                return r.status, r.headers["Content-Type"], r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers["Content-Type"], err.read()

    return await asyncio.to_thread(fetch)


async def scrape(server: Server) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Sample name → {sorted labels: value}, parsed the way Prometheus' own client parses it."""
    status, content_type, body = await get(server, "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


async def test_probe_metrics_as_prometheus_reads_them(endpoint) -> None:
    server, metrics, _ = endpoint
    refused = Failure("rejected", Phase.RCPT_TO, False, "no such user", 550, "5.1.1")
    bad_send = sent((Phase.GREETING, 220), (Phase.RCPT_TO, 550), failure=refused)
    # It went over a session another canary opened: that greeting was counted there.
    greeting = replace(bad_send.replies[0], shared=True)
    bad_send = replace(bad_send, replies=(greeting, *bad_send.replies[1:]))
    first = record(1, "r1", "alice", Verdict.INBOX, 0, 0.3)
    second = record(2, "r1", "alice", Verdict.SPAM, 5, 40.0)
    missing = record(3, "r1", "bob", Verdict.MISSING, 0)
    failed = record(4, "r2", "bob", Verdict.SEND_FAILED, 0, send=bad_send)
    failed = replace(failed, decision=replace(failed.decision, failure=refused))
    # Per-mailbox series carry the recipient's provider; "carol" is not in the config.
    metrics.providers = {"alice": "gmail", "bob": "example.test"}
    for good in (first, second, missing):
        metrics.on_progress(good.planned, "watching", replace(good, decision=None))
        metrics.on_progress(good.planned, "final", good)
    metrics.on_progress(failed.planned, "final", failed)
    # The missing canary turns up late: the gauges change, the counter keeps "missing".
    late = replace(missing, decision=Decision(Verdict.LATE, arrived_at=T0, delivery_seconds=900))
    metrics.on_progress(late.planned, "late", late)
    metrics.watcher_state("alice", True)
    metrics.watch_watchers(lambda: {"bob": False})
    metrics.scheduler_running(True)
    metrics.alert_delivery("ops-hook", "failed")
    metrics.alert_delivery("ops-hook", "sent")

    s = await scrape(server)
    probes = s["mailcanary_probes_total"]
    alice = {"route": "r1", "recipient": "alice", "provider": "gmail"}
    bob = {"recipient": "bob", "provider": "example.test"}
    assert probes[labels(**alice, verdict="inbox")] == 1
    assert probes[labels(**alice, verdict="spam")] == 1
    assert probes[labels(route="r1", **bob, verdict="missing")] == 1
    assert probes[labels(route="r2", **bob, verdict="send_failed")] == 1
    assert len(probes) == 4
    failures = s["mailcanary_probe_failures_total"]
    assert failures == {
        labels(route="r2", **bob, verdict="send_failed", kind="rejected", code="550"): 1
    }
    remedies = s["mailcanary_failure_kind_info"]
    assert any(dict(key)["kind"] == "rejected" and dict(key)["remedy"] for key in remedies)
    deliveries = s["mailcanary_alert_deliveries_total"]
    assert deliveries == {
        labels(channel="ops-hook", result="failed"): 1,
        labels(channel="ops-hook", result="sent"): 1,
    }

    assert s["mailcanary_delivery_seconds_count"][labels(**alice)] == 2
    assert s["mailcanary_delivery_seconds_sum"][labels(**alice)] == pytest.approx(40.3)
    buckets = s["mailcanary_delivery_seconds_bucket"]
    assert buckets[labels(**alice, le="0.4")] == 1
    assert buckets[labels(**alice, le="25.6")] == 1
    assert buckets[labels(**alice, le="51.2")] == 2
    assert labels(route="r1", **bob, le="+Inf") not in buckets

    last = s["mailcanary_last_verdict"]
    for verdict in Verdict:
        assert last[labels(**alice, verdict=verdict.value)] == (verdict is Verdict.SPAM)
        bob_r1 = last[labels(route="r1", **bob, verdict=verdict.value)]
        assert bob_r1 == (verdict is Verdict.LATE)
    assert s["mailcanary_last_verdict_timestamp_seconds"][labels(**alice)] == (
        second.finished_at.timestamp()
    )
    # Success is inbox only: alice's last success is the first probe.
    successes = s["mailcanary_last_success_timestamp_seconds"]
    assert successes == {labels(**alice): first.planned.planned_at.timestamp()}

    replies = s["mailcanary_smtp_replies_total"]
    assert replies[labels(phase="greeting", code="220")] == 3  # the shared one not again
    assert replies[labels(phase="data", code="250")] == 3
    assert replies[labels(phase="rcpt_to", code="550")] == 1
    assert s["mailcanary_watcher_connected"] == {
        labels(account="alice", provider="gmail"): 1,
        labels(account="bob", provider="example.test"): 0,
    }
    assert s["mailcanary_scheduler_running"] == {(): 1}
    failed_now = labels(route="r2", **bob, verdict="send_failed", kind="rejected", code="550")
    assert s["mailcanary_last_failure_info"] == {failed_now: 1}

    # The next probe of r2/bob arrives: the failure of the moment is gone, its count stays.
    healed = record(5, "r2", "bob", Verdict.INBOX, 5, 1.0)
    metrics.on_progress(healed.planned, "final", healed)
    s = await scrape(server)
    assert "mailcanary_last_failure_info" not in s
    assert s["mailcanary_probe_failures_total"] == {failed_now: 1}


async def test_seeding_restores_the_last_verdict_and_success(endpoint) -> None:
    server, metrics, _ = endpoint
    older_success = record(1, "r1", "alice", Verdict.INBOX, 0, 2.0)
    latest = record(2, "r1", "alice", Verdict.MISSING, 10)
    # Newest first, as Store.history returns them.
    metrics.seed([latest, older_success])
    # What Store.latest_per_pair knows of bob: only when his newest inbox canary was planned.
    metrics.seed_success("r1", "bob", T0 + timedelta(minutes=3))
    metrics.seed_success("r1", "carol", None)
    # A record older than what the gauges show must not overwrite them.
    metrics.probe_revised(record(0, "r1", "alice", Verdict.SPAM, -10, 1.0))

    s = await scrape(server)
    # Without a config every mailbox's provider is "unknown".
    pair = {"route": "r1", "provider": "unknown"}
    alice = labels(**pair, recipient="alice", verdict="missing")
    assert s["mailcanary_last_verdict"][alice] == 1
    assert sum(s["mailcanary_last_verdict"].values()) == 1
    assert s["mailcanary_last_success_timestamp_seconds"] == {
        labels(**pair, recipient="alice"): older_success.planned.planned_at.timestamp(),
        labels(**pair, recipient="bob"): (T0 + timedelta(minutes=3)).timestamp(),
    }
    assert "mailcanary_probes_total" not in s  # seeding counts nothing


async def test_healthz_not_found_and_wrong_method(endpoint) -> None:
    server, _, health = endpoint
    status, content_type, body = await get(server, "/healthz")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {"status": "ok", "scheduler": "running"}

    health["ok"], health["details"] = False, {"scheduler": "stopped", "reasons": ["scheduler"]}
    status, _, body = await get(server, "/healthz?verbose=1")
    assert status == 503
    assert json.loads(body) == {
        "status": "unhealthy",
        "scheduler": "stopped",
        "reasons": ["scheduler"],
    }

    assert (await get(server, "/"))[0] == 404
    assert (await get(server, "/metrics", method="POST"))[0] == 405
    status, _, body = await get(server, "/metrics", method="HEAD")
    assert (status, body) == (200, b"")


async def test_slow_and_oversized_clients_are_dropped_while_others_are_served(endpoint) -> None:
    server, _, _ = endpoint
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        started = time.monotonic()
        assert (await get(server, "/healthz"))[0] == 200  # served while the silent one waits
        async with asyncio.timeout(READ_TIMEOUT * 10):
            assert await reader.read() == b""  # closed by the server, unanswered
        assert time.monotonic() - started >= READ_TIMEOUT * 0.9
    finally:
        writer.close()

    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nX-Junk: " + b"a" * 20000 + b"\r\n\r\n")
        async with asyncio.timeout(5):
            answer = await reader.read()
        # aiohttp refuses an oversized head as a bad request, and closes.
        assert answer.startswith(b"HTTP/1.0 400 ")
    finally:
        writer.close()


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:9842") == ("127.0.0.1", 9842)
    assert parse_listen("[::1]:9842") == ("::1", 9842)
    assert parse_listen("0.0.0.0:0") == ("0.0.0.0", 0)
    for wrong in ("9842", ":9842", "::1:9842", "localhost:http", "127.0.0.1:70000", ""):
        with pytest.raises(ValueError):
            parse_listen(wrong)
