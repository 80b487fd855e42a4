"""The pages' contexts: what each page shows, gathered from the store and the config.

Handlers stay in app.py; these functions return plain dicts for the templates. Nothing here
writes or formats HTML, and no secret is ever put in a context: only names, addresses of seed
mailboxes, verdicts, server replies and the catalogue's words.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.adapters.webstore import FailureGroup, OpenAlert, WebStore
from monitor.alerts.message import HEADLINE, KIND_ADVICE
from monitor.alerts.state import AlertKind
from monitor.config.schema import Config
from monitor.content.judge import REMEDY, judge, pairings, sentence
from monitor.core.catalogue import advise
from monitor.core.models import ArrivalSource, ProbeRecord, Verdict, utcnow
from monitor.dnscheck.policy import Finding
from monitor.reports.model import floor_hour
from monitor.web import charts, model, reads
from monitor.web.cache import Windows
from monitor.web.live import Hub
from monitor.web.newest import Newest

DAY, WEEK, HOUR = timedelta(days=1), timedelta(days=7), timedelta(hours=1)
RECENT_PROBES = 50
UNKNOWN = "(not in the config)"
ARRIVAL = {
    ArrivalSource.DETECTED: "when the watcher saw it (IDLE push or a poll)",
    ArrivalSource.INTERNALDATE: "the receiving server's INTERNALDATE",
    ArrivalSource.RECEIVED: "the date of the top Received header",
    ArrivalSource.LOOKOUT: "the middle of the window between the last look that missed it and "
    "the sighting",
}


@dataclass
class Source:
    """What the pages read; the daemon fills it in and keeps it current across reloads."""

    config: Callable[[], Config]
    store: WebStore
    hub: Hub = field(default_factory=Hub)
    # Findings of the weekly DNS check per sending account; empty until it first ran.
    posture: Callable[[], Mapping[str, Sequence[Finding]]] = dict
    clock: Callable[[], datetime] = utcnow
    windows: Windows = field(default_factory=Windows)
    newest: Newest = field(default_factory=Newest)


def providers_of(cfg: Config) -> dict[str, str]:
    """Account name → provider: the preset's name, else the domain of its address."""
    return {a.name: a.provider or a.email.rpartition("@")[2].lower() for a in cfg.accounts}


def _mailboxes(cfg: Config, latest: Sequence[model.Latest]) -> list[model.Mailbox]:
    newest = {(x.route, x.recipient): x for x in latest}
    provider = providers_of(cfg)
    return [
        model.Mailbox(
            route.name,
            route.sender,
            to,
            provider.get(to, UNKNOWN),
            newest.get((route.name, to)),
        )
        for route in cfg.routes
        for to in route.recipients
    ]


def _per_recipient(tallies: Mapping[tuple[str, str], model.Tally]) -> dict[str, model.Tally]:
    by_recipient: dict[str, list[model.Tally]] = {}
    for (_, recipient), tally in tallies.items():
        by_recipient.setdefault(recipient, []).append(tally)
    return {recipient: model.total(found) for recipient, found in by_recipient.items()}


def _alert(alert: OpenAlert) -> dict[str, Any]:
    """An open alert with its headline and the catalogue's words (on its failure if it has
    one, else on its kind); a kind this version does not know shows by its name only."""
    try:
        kind: AlertKind | None = AlertKind(alert.kind)
    except ValueError:
        kind = None
    if alert.failure is not None:
        found = advise(alert.failure)
        explanation, remedy = found.explanation, found.remedy
    else:
        explanation, remedy = KIND_ADVICE.get(kind, ("", "")) if kind else ("", "")
    title = HEADLINE[kind] if kind else alert.kind
    return {"alert": alert, "title": title, "explanation": explanation, "remedy": remedy}


def _posture(cfg: Config, found: Mapping[str, Sequence[Finding]]) -> list[dict[str, Any]]:
    senders = dict.fromkeys(route.sender for route in cfg.routes)
    rank = {"ok": 0, "warn": 1, "error": 2, "fail": 3}
    shown = []
    for name in senders:
        findings = list(found.get(name, ()))
        worst = max((str(f.status) for f in findings), key=rank.__getitem__, default="unknown")
        try:
            domain = cfg.account(name).email.rpartition("@")[2]
        except KeyError:
            domain = ""
        problems = [f for f in findings if str(f.status) != "ok"]
        shown.append(
            {
                "account": name,
                "domain": domain,
                "status": worst,
                "checked": bool(findings),
                "ok": len(findings) - len(problems),
                "problems": problems,
            }
        )
    return sorted(shown, key=lambda p: (-rank.get(p["status"], 1), p["account"]))


async def overview(source: Source) -> dict[str, Any]:
    cfg, now = source.config(), source.clock()
    hour = floor_hour(now)
    week_start = hour - WEEK + HOUR
    pairs = [(route.name, to) for route in cfg.routes for to in route.recipients]
    latest = await source.newest.get(source.store, pairs)
    fresh = hour - HOUR  # this hour and the previous one are read on every view
    short, long = await reads.counts(source.store, source.windows, week_start, fresh)
    delivery = await reads.delivery(source.store, source.windows, week_start, fresh)
    alerts = await source.store.open_alerts()
    fleet = await source.store.fleet(cfg.monitor.lease)  # None unless several share PostgreSQL
    boxes = _mailboxes(cfg, latest)
    day, week = _per_recipient(short), _per_recipient(long)
    day_all, week_all = model.total(day.values()), model.total(week.values())
    providers = model.group(boxes, day, week)
    open_alerts = [_alert(alert) for alert in alerts]
    return {
        "now": now,
        "headline": model.headline(boxes, day_all, len(alerts)),
        "rate_now": model.inbox_now(boxes),
        "rate_day": day_all.rate(Verdict.INBOX),
        "rate_week": week_all.rate(Verdict.INBOX),
        "mailboxes": len(boxes),
        "providers": [
            {
                "provider": p,
                "bars": [
                    ("24 h", charts.stacked(p.day), p.day),
                    ("7 d", charts.stacked(p.week), p.week),
                ],
            }
            for p in providers
        ],
        "delivery": charts.line_chart(model.percentiles(delivery), week_start, hour + HOUR),
        "alerts": open_alerts,
        "posture": _posture(cfg, source.posture()),
        "fleet": fleet,
        "content": _content_or_sender(cfg, boxes),
    }


def _content_or_sender(cfg: Config, boxes: Sequence[model.Mailbox]) -> list[dict[str, str]]:
    """From the newest verdicts of a plain canary and a real-message route side by side."""
    newest = {(b.route, b.recipient): b.verdict for b in boxes}

    def spam(route: str, recipient: str) -> float | None:
        verdict = newest.get((route, recipient))
        return (
            None if verdict not in (Verdict.SPAM, Verdict.INBOX) else float(verdict == Verdict.SPAM)
        )

    said = []
    for pair in pairings(cfg.routes):
        found = judge(
            spam(pair.plain_route, pair.recipient), spam(pair.message_route, pair.recipient)
        )
        if found is not None:
            said.append({"verdict": found, "text": sentence(pair, found), "remedy": REMEDY[found]})
    return said


async def route_page(source: Source, route: str, recipient: str | None) -> dict[str, Any] | None:
    cfg, now = source.config(), source.clock()
    configured = next((r for r in cfg.routes if r.name == route), None)
    recent = await source.store.recent(route, recipient, RECENT_PROBES)
    if configured is None and not recent:
        return None
    if configured is not None:
        recipients = list(configured.recipients)
    else:
        recipients = sorted({r.recipient for r in recent})
    if recipient is not None:
        if recipient not in recipients and not recent:
            return None
        recipients = [recipient]
    hour = floor_hour(now)
    week_start = hour - WEEK + HOUR
    if recipient is not None:
        # A heatmap: seven UTC days as rows, 24 hours as columns, today last.
        start = hour.replace(hour=0) - timedelta(days=6)
        count = 7 * 24
    else:
        start, count = hour - timedelta(hours=47), 48
    fresh, store, windows = hour - HOUR, source.store, source.windows
    hourly = await reads.hourly(store, windows, start, fresh, route, recipient)
    provider = providers_of(cfg)
    days = [start + timedelta(days=k) for k in range(7)]
    strips = [
        {
            "recipient": to,
            "provider": provider.get(to, UNKNOWN),
            "cells": charts.strip(
                {at: t for (who, at), t in hourly.items() if who == to}, start, count, now
            ),
        }
        for to in recipients
    ]
    failures = _by_code(await source.store.failures(week_start, route, recipient))
    delivery = await reads.delivery(store, windows, week_start, fresh, route, recipient)
    return {
        "now": now,
        "route": route,
        "sender": configured.sender if configured else None,
        "interval": configured.interval if configured else None,
        "recipient": recipient,
        "strips": strips,
        "days": days,
        "failures": failures,
        "delivery": charts.line_chart(model.percentiles(delivery), week_start, hour + HOUR),
        "recent": recent,
    }


def _by_code(groups: Sequence[FailureGroup]) -> list[dict[str, Any]]:
    """The store's groups (per mailbox) merged across mailboxes, most frequent first; each
    with the newest server text and the catalogue's advice for it."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for g in groups:
        f = g.failure
        key = (f.kind, f.phase, f.code, f.enhanced, f.transient)
        entry = merged.setdefault(key, {"group": g, "n": 0, "recipients": []})
        entry["n"] += g.n
        entry["recipients"].append(g.recipient)
        if g.last_id > entry["group"].last_id:
            entry["group"] = g
    for entry in merged.values():
        entry["advice"] = advise(entry["group"].failure)
        entry["recipients"] = sorted(set(entry["recipients"]))
    return sorted(merged.values(), key=lambda e: (-e["n"], -e["group"].last_id))


async def probe_page(source: Source, probe_id: int) -> dict[str, Any] | None:
    record: ProbeRecord | None = await source.store.probe(probe_id)
    if record is None:
        return None
    decision, sighting, send = record.decision, record.sighting, record.send
    receipt = sighting.receipt if sighting else None
    return {
        "now": source.clock(),
        "p": record,
        "planned": record.planned,
        "send": send,
        "decision": decision,
        "sighting": sighting,
        "auth": receipt.auth if receipt else None,
        "hops": receipt.hops if receipt else (),
        "spam_headers": receipt.spam_headers if receipt else (),
        "arrival": ARRIVAL.get(decision.arrival_source) if decision else None,
        "advice": record.advice,
    }
