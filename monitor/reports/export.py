"""The report as data: JSON and CSV, and the names the text and HTML renderings share.

JSON (`report_json`) is a stable interface, schema "mailcanary.report/1"; fields are only
ever added. Times are ISO 8601 UTC, durations seconds, rates fractions 0..1 (null when
there were no canaries: 0/0 is not 0 %), and every "summary" object is
    {"canaries": int, "counts": {verdict: int}, "rates": {verdict: float|null},
     "delivery": {"count": int, "p50": s|null, "p95": s|null, "max": s|null},
     "dmarc_failed": {verdict: int},
     "previous": {"canaries", "counts", "rates", "delivery"},
     "trend": {"inbox_rate"|"spam_rate"|"missing_rate"|"failed_rate"|"p50"|"p95":
               {"now", "before", "delta", "direction": "up"|"down"|"flat"|null,
                "better": bool|null}}}
with the verdicts inbox, spam, missing, late, send_failed, check_failed. The document:
    schema, generated_at, timezone,
    headline: {"state": "green"|"amber"|"red"|"grey", "text"}, the report in one line,
    period / previous_period: {"start", "end", "label", "hours"},
    instances: [name], the instances whose canaries it counts (either period),
    instance_filter: [name], the instances it was limited to ([]: the whole fleet),
    by_instance: bool, whether each mailbox has one entry per instance,
    total: summary,
    providers: [{"provider", "summary", "mailboxes": [{"route", "recipient", "mailbox",
                 "instance", "first_seen", "new", "configured", "summary"}]}],
    days: [{"date", "start", "end", "hours", "canaries", "counts",
            "delivery": {"count", "p50", "p95", "max"}}],
    worst_hours: [{"start", "label", "canaries", "not_inbox", "counts"}],
    failures: [{"route", "recipient", "verdict", "kind", "phase", "smtp_code",
                "smtp_enhanced", "transient", "count", "message", "explanation", "remedy"}],
    incidents_available: bool,
    incidents: [{"route", "recipient", "kind", "fired_at", "resolved_at",
                 "duration_seconds", "open"}],
    what_to_fix: [{"severity": "high"|"medium"|"low", "text", "remedy"}], severity first,
    authentication: {"sample": int, the newest delivered canaries of each mailbox it reads,
                     "providers" / "senders": [{"name", "canaries",
                         "pass_rate": {"spf"|"dkim"|"dmarc": float|null}}],
                     "spam_causes": {provider: {"check", "spam", "spam_failed",
                                                "inbox_failed"}}},
    content_filters: {"sample": int, the newest delivered canaries of each mailbox it reads,
                      "mailboxes": [one per mailbox and filter that scored its canaries:
                          {"route", "recipient", "mailbox", "provider",
                           "filter": "spamassassin"|"rspamd"|"microsoft",
                           "canaries": those it scored, "spam": of them in the spam folder,
                           "over_threshold": of them scored at or over "threshold" (the
                           filter's own), "median_score",
                           "judgement": "content"|"sender"|null, from a plain canary route
                           beside a real-message route, "role": "message"|"plain"|null,
                           this route's part in that pair, "compared_with": the other route,
                           "shown": whether it is worth a line in text and HTML (spam, over
                           the threshold or judged; they list the first 10),
                           "top_rules": [{"name", "hits", "points": the median it added
                               (null: the filter gives none), "explanation": one line for
                               common rules or null, "description": the filter's own words
                               or null}]}]},
                      top_rules being those that added points, or whose points the filter
                      did not write counted on the canaries it called spam or that landed
                      there; most hits first, then most points, at most 5,
    weeks: [{"first_day", "canaries", "counts", "delivery"}], the trend, oldest first,
    dns: [{"account", "domain", "findings": [{"check", "target", "status", "detail",
           "remedy"}], "compared_with": the earlier run's time or null, "changes": [{"check",
           "target", "was", "now"}] (statuses; null: not checked then / no longer)}]
         or null when the report did not check DNS
Percentiles come from log-scale histograms (monitor.reports.model): within a few per cent.
A mailbox's "instance" is the instance whose canaries its entry counts, or null when it adds
up all of them (`by_instance` false, or a configured mailbox with no canaries at all).
Text, HTML and CSV show an instance column only when split and there is more than one.

CSV: one row per mailbox ("level" mailbox; per instance too when split), provider and the
total, with the columns of CSV_COLUMNS; provider and total rows carry the auth pass rates,
mailbox rows the content filter that scored most of their sampled canaries: content_filter,
content_canaries, content_median_score, content_threshold, content_over_threshold and
content_top_rules as `NAME:hits:points` joined by ";" (empty when no filter scored them).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.core.models import Verdict
from monitor.dnscheck.policy import finding_json
from monitor.reports.auth import CHECKS, AuthRates
from monitor.reports.content import CSV_COLUMNS as CONTENT_COLUMNS
from monitor.reports.content import FilterVerdicts, content_json, csv_cells
from monitor.reports.document import PairReport, ProviderReport, Report
from monitor.reports.model import VERDICTS, Histogram, Period, Summary, Tally

SCHEMA = "mailcanary.report/1"
SHOWN_FAILURES = 15  # text and HTML; JSON has them all
FORMATS = ("text", "html", "json", "csv")
SHORT = {
    Verdict.INBOX: "inbox",
    Verdict.SPAM: "spam",
    Verdict.MISSING: "missing",
    Verdict.LATE: "late",
    Verdict.SEND_FAILED: "send✗",
    Verdict.CHECK_FAILED: "check✗",
}


# -- JSON ------------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _counts(tally: Tally) -> dict[str, int]:
    return {v.value: tally.count(v) for v in VERDICTS}


def _rates(tally: Tally) -> dict[str, float | None]:
    return {v.value: tally.rate(v) for v in VERDICTS}


def _delivery(histogram: Histogram) -> dict[str, Any]:
    return {
        "count": histogram.n,
        "p50": histogram.percentile(0.5),
        "p95": histogram.percentile(0.95),
        "max": histogram.max,
    }


def _summary(summary: Summary) -> dict[str, Any]:
    return {
        "canaries": summary.tally.total,
        "counts": _counts(summary.tally),
        "rates": _rates(summary.tally),
        "delivery": _delivery(summary.delivery),
        "dmarc_failed": {v.value: n for v, n in summary.dmarc_failed.items()},
        "previous": {
            "canaries": summary.previous.total,
            "counts": _counts(summary.previous),
            "rates": _rates(summary.previous),
            "delivery": _delivery(summary.previous_delivery),
        },
        "trend": {
            name: {
                "now": t.now,
                "before": t.before,
                "delta": t.delta,
                "direction": t.direction,
                "better": t.better,
            }
            for name, t in summary.trends().items()
        },
    }


def _period(period: Period) -> dict[str, Any]:
    return {
        "start": _iso(period.start),
        "end": _iso(period.end),
        "label": period.label,
        "hours": period.hours,
    }


def report_json(report: Report) -> dict[str, Any]:
    until = min(report.generated_at, report.period.end)
    return {
        "schema": SCHEMA,
        "generated_at": _iso(report.generated_at),
        "timezone": report.period.timezone,
        "period": _period(report.period),
        "previous_period": _period(report.previous_period),
        "instances": list(report.instances),
        "instance_filter": list(report.only),
        "by_instance": report.split,
        "total": _summary(report.total),
        "providers": [
            {
                "provider": provider.provider,
                "summary": _summary(provider.summary),
                "mailboxes": [
                    {
                        "route": pair.route,
                        "recipient": pair.recipient,
                        "mailbox": pair.mailbox.address,
                        "instance": pair.instance,
                        "first_seen": _iso(pair.first_seen),
                        "new": pair.new,
                        "configured": pair.configured,
                        "summary": _summary(pair.summary),
                    }
                    for pair in (provider.by_instance if report.split else provider.pairs)
                ],
            }
            for provider in report.providers
        ],
        "days": [
            {
                "date": day.day.date.isoformat(),
                "start": _iso(day.day.start),
                "end": _iso(day.day.end),
                "hours": day.day.hours,
                "canaries": day.tally.total,
                "counts": _counts(day.tally),
                "delivery": _delivery(day.delivery),
            }
            for day in report.days
        ],
        "worst_hours": [
            {
                "start": _iso(hour.start),
                "label": hour.label,
                "canaries": hour.tally.total,
                "not_inbox": hour.bad,
                "counts": _counts(hour.tally),
            }
            for hour in report.worst_hours
        ],
        "failures": [
            {
                "route": g.failure.route,
                "recipient": g.failure.recipient,
                "verdict": g.failure.verdict.value,
                "kind": g.failure.kind,
                "phase": g.failure.phase,
                "smtp_code": g.failure.code,
                "smtp_enhanced": g.failure.enhanced,
                "transient": g.failure.transient,
                "count": g.failure.count,
                "message": g.failure.message,
                "explanation": g.explanation,
                "remedy": g.remedy,
            }
            for g in report.failures
        ],
        "incidents_available": report.incidents is not None,
        "incidents": [
            {
                "route": i.route,
                "recipient": i.recipient,
                "kind": i.kind,
                "fired_at": _iso(i.fired_at),
                "resolved_at": _iso(i.resolved_at),
                "duration_seconds": i.seconds(until),
                "open": i.resolved_at is None,
            }
            for i in report.incidents or ()
        ],
        "what_to_fix": [
            {"severity": f.severity, "text": f.text, "remedy": f.remedy} for f in report.fixes
        ],
        "headline": {"state": report.headline.state, "text": report.headline.text},
        "authentication": {
            "sample": report.auth.sample,
            "providers": [_auth(r) for r in report.auth.providers],
            "senders": [_auth(r) for r in report.auth.senders],
            "spam_causes": {
                name: {
                    "check": c.check,
                    "spam": c.spam,
                    "spam_failed": c.spam_failed,
                    "inbox_failed": c.inbox_failed,
                }
                for name, c in report.auth.causes.items()
            },
        },
        "content_filters": content_json(report.content),
        "weeks": [
            {
                "first_day": w.first_day.isoformat(),
                "canaries": w.tally.total,
                "counts": _counts(w.tally),
                "delivery": _delivery(w.delivery),
            }
            for w in report.weeks
        ],
        "dns": None
        if report.dns is None
        else [
            {
                "account": d.account,
                "domain": d.domain,
                "findings": [finding_json(f) for f in d.findings],
                "compared_with": _iso(d.compared_with),
                "changes": [
                    {"check": c.check, "target": c.target, "was": c.was, "now": c.now}
                    for c in d.changes
                ],
            }
            for d in report.dns
        ],
    }


def _auth(rates: AuthRates) -> dict[str, Any]:
    return {
        "name": rates.name,
        "canaries": rates.canaries,
        "pass_rate": {check: rates.rate(check) for check in CHECKS},
    }


def render_json(report: Report) -> str:
    return json.dumps(report_json(report), ensure_ascii=False, indent=2) + "\n"


# -- CSV: one row per mailbox (and instance, when split), provider and the total ---------------

CSV_COLUMNS = (
    "level",
    "provider",
    "route",
    "recipient",
    "mailbox",
    "canaries",
    *(v.value for v in VERDICTS),
    *(f"{v.value}_rate" for v in VERDICTS),
    "p50_seconds",
    "p95_seconds",
    "max_seconds",
    "previous_canaries",
    "previous_inbox_rate",
    "inbox_rate_delta",
    "p95_delta_seconds",
    *(f"{check}_pass_rate" for check in CHECKS),
    *CONTENT_COLUMNS,
)


def _csv_row(
    level: str,
    names: Sequence[str],
    s: Summary,
    auth: AuthRates | None = None,
    content: FilterVerdicts | None = None,
) -> list[object]:
    """`names`: provider, route, recipient, mailbox (and instance when split); `auth`: the
    pass rates of a provider or the total (empty on a mailbox's row); `content`: a mailbox's
    content-filter verdicts."""
    trends = s.trends()
    return [
        level,
        *names,
        s.tally.total,
        *(s.tally.count(v) for v in VERDICTS),
        *(_num(s.tally.rate(v)) for v in VERDICTS),
        _num(s.delivery.percentile(0.5)),
        _num(s.delivery.percentile(0.95)),
        _num(s.delivery.max),
        s.previous.total,
        _num(s.previous.rate(Verdict.INBOX)),
        _num(trends["inbox_rate"].delta),
        _num(trends["p95"].delta),
        *(_num(auth.rate(check) if auth else None) for check in CHECKS),
        *csv_cells(content),
    ]


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def render_csv(report: Report) -> str:
    split = report.shows_instances
    columns = list(CSV_COLUMNS)
    if split:
        columns.insert(columns.index("mailbox") + 1, "instance")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for provider in report.providers:
        for line in report.lines(provider):
            names = _csv_names(provider, line, split)
            content = report.content.of(line.route, line.recipient)
            writer.writerow(_csv_row("mailbox", names, line.summary, content=content))
        auth = next((r for r in report.auth.providers if r.name == provider.provider), None)
        names = _csv_names(provider, None, split)
        writer.writerow(_csv_row("provider", names, provider.summary, auth))
    writer.writerow(_csv_row("total", [""] * (5 if split else 4), report.total))
    return out.getvalue()


def _csv_names(provider: ProviderReport, line: PairReport | None, split: bool) -> list[str]:
    names = [provider.provider, "", "", ""]
    if line is not None:
        names[1:] = [line.route, line.recipient, line.mailbox.address or ""]
    instance = line.instance if line is not None else None
    return [*names, instance or ""] if split else names
