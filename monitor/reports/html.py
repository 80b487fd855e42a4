"""The report as one HTML document that mail clients render: inline styles only (clients
drop <style> blocks and never run scripts), layout by tables, images by `src` given by the
caller: `cid:` references in an email, `data:` URIs in a file opened in a browser.

Cells carry `data-field` (and rows `data-route`/`data-recipient`/`data-provider`, and
`data-instance` on a mailbox's line of one instance) so programs, and the tests, can find a
number without depending on the layout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from monitor.core.models import Verdict
from monitor.reports.build import Report
from monitor.reports.model import VERDICTS, Summary, Tally
from monitor.reports.query import SHORT, SHOWN_FAILURES, percent, seconds, trend_text
from monitor.reports.text import instances_line

FONT = "font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;"
TABLE = "border-collapse:collapse;font-size:13px;margin:4px 0 16px 0;"
TH = "text-align:right;padding:4px 8px;border-bottom:2px solid #999;background:#f3f3f3;"
TD = "text-align:right;padding:3px 8px;border-bottom:1px solid #ddd;white-space:nowrap;"
FIRST = "text-align:left;"
H2 = "font-size:16px;margin:20px 0 6px 0;"
SEVERITY = {"high": "#c62828", "medium": "#ef6c00", "low": "#607d8b"}
GOOD, BAD = "#2e7d32", "#c62828"


def _td(text: str, field: str | None = None, style: str = "", first: bool = False) -> str:
    attr = f' data-field="{field}"' if field else ""
    return f'<td{attr} style="{TD}{FIRST if first else ""}{style}">{escape(text)}</td>'


def _cell(tally: Tally, verdict: Verdict) -> str:
    if not tally.total:
        return _td("–", verdict.value)
    text = f"{tally.count(verdict)} ({percent(tally.rate(verdict))})"
    return _td(text, verdict.value)


def _trend(summary: Summary, name: str) -> str:
    trend = summary.trends()[name]
    color = {True: GOOD, False: BAD}.get(trend.better, "") if trend.better is not None else ""
    return _td(trend_text(trend), f"{name}_trend", f"color:{color};" if color else "")


def _summary_cells(summary: Summary) -> str:
    times = summary.delivery
    return "".join(
        [
            _td(str(summary.tally.total), "canaries"),
            *(_cell(summary.tally, v) for v in VERDICTS),
            _td(seconds(times.percentile(0.5)), "p50"),
            _td(seconds(times.percentile(0.95)), "p95"),
            _td(seconds(times.max), "max"),
            _trend(summary, "inbox_rate"),
            _trend(summary, "p95"),
        ]
    )


def _head(names: Sequence[str]) -> str:
    cells = "".join(
        f'<th style="{TH}{FIRST if i == 0 else ""}">{escape(n)}</th>' for i, n in enumerate(names)
    )
    return f"<tr>{cells}</tr>"


def _table(section: str, head: Sequence[str], rows: Sequence[str]) -> str:
    body = "".join(rows)
    return f'<table data-section="{section}" style="{TABLE}">{_head(head)}{body}</table>'


def render_html(report: Report, images: Mapping[str, str] | None = None) -> str:
    """`images`: chart name ("placement", "delivery") → the `src` to show it with."""
    period = report.period
    title = f"mailcanary deliverability report {period.label}"
    summary_head = ["", "canaries", *(SHORT[v] for v in VERDICTS), "p50", "p95", "max"]
    summary_head += ["inbox vs before", "p95 vs before"]
    whose = instances_line(report)
    parts = [
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'</head><body style="{FONT}color:#222;margin:16px;">',
        f'<h1 style="font-size:20px;margin:0 0 4px 0;">{escape(title)}</h1>',
        f'<p style="margin:0 0 12px 0;color:#555;">{escape(period.timezone)}, '
        f"{period.hours} hours; compared with {escape(report.previous_period.label)}"
        + (f"; {escape(whose)}" if whose else "")
        + "</p>",
        _table(
            "total",
            summary_head,
            [f'<tr data-total="1">{_td("Total", first=True)}{_summary_cells(report.total)}</tr>'],
        ),
        _fixes(report),
    ]
    if images:
        parts.append(f'<h2 style="{H2}">Placement and delivery time per day</h2>')
        for name in ("placement", "delivery"):
            if name in images:
                parts.append(
                    f'<img src="{escape(images[name])}" alt="{name} chart" width="720" '
                    'height="280" style="display:block;max-width:100%;height:auto;">'
                )
    split = report.shows_instances
    rows = []
    for provider in report.providers:
        name = escape(provider.provider)
        rows.append(
            f'<tr data-provider="{name}" style="background:#fafafa;font-weight:bold;">'
            f"{_td(provider.provider, first=True)}{_td('', first=True) if split else ''}"
            f"{_summary_cells(provider.summary)}</tr>"
        )
        for pair in report.lines(provider):
            label = f"{pair.route} → {pair.mailbox.address or pair.recipient}"
            if pair.new:
                label += " (new)"
            keys = f'data-route="{escape(pair.route)}" data-recipient="{escape(pair.recipient)}"'
            instance = ""
            if split:
                keys += f' data-instance="{escape(pair.instance or "")}"'
                instance = _td(pair.instance or "–", "instance", first=True)
            rows.append(
                f"<tr {keys}>{_td(label, first=True, style='padding-left:20px;')}{instance}"
                f"{_summary_cells(pair.summary)}</tr>"
            )
    mailbox_head = [summary_head[0], "instance", *summary_head[1:]] if split else summary_head
    parts += [
        f'<h2 style="{H2}">Mailboxes by provider</h2>',
        _table("mailboxes", mailbox_head, rows),
    ]
    parts += [_days(report), _worst(report), _failures(report), _incidents(report)]
    parts.append(
        f'<p style="color:#888;font-size:11px;">Generated {report.generated_at:%Y-%m-%d %H:%M} '
        "UTC by mailcanary. Percentiles come from log-scale histograms (within a few %).</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _fixes(report: Report) -> str:
    items = []
    for fix in report.fixes:
        color = SEVERITY.get(fix.severity, "#666")
        remedy = (
            f'<br><span style="color:#555;">→ {escape(fix.remedy)}</span>' if fix.remedy else ""
        )
        items.append(
            f'<li data-severity="{fix.severity}" style="margin-bottom:6px;">'
            f'<b style="color:{color};">{fix.severity}</b> {escape(fix.text)}{remedy}</li>'
        )
    body = "".join(items) or "<li>Nothing: keep watching.</li>"
    return f'<h2 style="{H2}">What to fix</h2><ul data-section="fixes">{body}</ul>'


def _days(report: Report) -> str:
    rows = []
    for d in report.days:
        label = f"{d.day.date:%a %Y-%m-%d}" + (f" ({d.day.hours}h)" if d.day.hours != 24 else "")
        rows.append(
            f'<tr data-date="{d.day.date.isoformat()}">{_td(label, first=True)}'
            f"{_td(str(d.tally.total), 'canaries')}"
            + "".join(_cell(d.tally, v) for v in VERDICTS)
            + _td(seconds(d.delivery.percentile(0.5)), "p50")
            + _td(seconds(d.delivery.percentile(0.95)), "p95")
            + "</tr>"
        )
    head = ["day", "canaries", *(SHORT[v] for v in VERDICTS), "p50", "p95"]
    return f'<h2 style="{H2}">Days ({escape(report.period.timezone)})</h2>' + _table(
        "days", head, rows
    )


def _worst(report: Report) -> str:
    rows = [
        f'<tr data-hour="{h.start.isoformat()}">{_td(h.label, first=True)}'
        f"{_td(str(h.tally.total), 'canaries')}{_td(str(h.bad), 'not_inbox')}"
        + "".join(_cell(h.tally, v) for v in VERDICTS[1:])
        + "</tr>"
        for h in report.worst_hours
    ]
    if not rows:
        return f'<h2 style="{H2}">Worst hours</h2><p>Every canary reached the inbox.</p>'
    head = ["hour", "canaries", "not inbox", *(SHORT[v] for v in VERDICTS[1:])]
    return f'<h2 style="{H2}">Worst hours</h2>' + _table("worst_hours", head, rows)


def _failures(report: Report) -> str:
    rows = []
    for group in report.failures[:SHOWN_FAILURES]:
        f = group.failure
        reply = " ".join(str(x) for x in (f.code, f.enhanced) if x)
        rows.append(
            f"<tr>{_td(str(f.count), 'count')}{_td(f.verdict.value, first=True)}"
            f"{_td(f'{f.route} → {f.recipient}', first=True)}{_td(f.kind or '', first=True)}"
            f"{_td(reply, 'reply', first=True)}"
            f"{_td(group.explanation, 'explanation', 'white-space:normal;', first=True)}</tr>"
        )
    if not rows:
        return f'<h2 style="{H2}">Failures</h2><p>None.</p>'
    head = ["count", "verdict", "route → mailbox", "failure", "reply", "what it means"]
    more = len(report.failures) - SHOWN_FAILURES
    rest = f"<p>… and {more} more (mailcanary report --format json).</p>" if more > 0 else ""
    return f'<h2 style="{H2}">Failures</h2>' + _table("failures", head, rows) + rest


def _incidents(report: Report) -> str:
    if report.incidents is None:
        return f'<h2 style="{H2}">Incidents</h2><p>Alert history not available.</p>'
    until = min(report.generated_at, report.period.end)
    rows = []
    zone = report.period.zone
    for i in report.incidents:
        state = "still firing" if i.resolved_at is None else "resolved"
        rows.append(
            f"<tr>{_td(i.kind, first=True)}{_td(f'{i.route} → {i.recipient}', first=True)}"
            f"{_td(f'{i.fired_at.astimezone(zone):%a %d %b %H:%M}', first=True)}"
            f"{_td(seconds(i.seconds(until)), 'duration')}{_td(state, first=True)}</tr>"
        )
    if not rows:
        return f'<h2 style="{H2}">Incidents</h2><p>No alert fired.</p>'
    head = ["alert", "route → mailbox", "fired", "lasted", "state"]
    return f'<h2 style="{H2}">Incidents</h2>' + _table("incidents", head, rows)
