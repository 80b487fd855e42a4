"""The report as plain text: aligned tables that read in a terminal and in a text email."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.core.models import Verdict
from monitor.reports.document import Report
from monitor.reports.model import VERDICTS, Summary, Tally
from monitor.reports.query import SHORT, SHOWN_FAILURES
from monitor.templates.filters import percent, seconds, trend_text


def _cell(tally: Tally, verdict: Verdict) -> str:
    n = tally.count(verdict)
    return f"{n} ({percent(tally.rate(verdict))})" if tally.total else "–"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Columns padded to their widest cell; the first `left` columns left-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(c).ljust(w) if i < left else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _summary_cells(summary: Summary) -> list[str]:
    tally, times = summary.tally, summary.delivery
    return [
        str(tally.total),
        *(_cell(tally, v) for v in VERDICTS),
        seconds(times.percentile(0.5)),
        seconds(times.percentile(0.95)),
        seconds(times.max),
        trend_text(summary.trends()["inbox_rate"]),
    ]


def headline(summary: Summary) -> str:
    tally, trends = summary.tally, summary.trends()
    if tally.total == 0:
        return "no canaries"
    parts = [f"{tally.total} canaries", f"inbox {percent(tally.rate(Verdict.INBOX))}"]
    if trend := trend_text(trends["inbox_rate"]):
        parts[-1] += f" ({trend})"
    parts.append(f"spam {percent(tally.rate(Verdict.SPAM))}")
    p50, p95 = summary.delivery.percentile(0.5), summary.delivery.percentile(0.95)
    if p50 is not None:
        parts.append(f"delivery p50 {seconds(p50)}, p95 {seconds(p95)}")
    return ", ".join(parts)


def instances_line(report: Report) -> str | None:
    """Whose canaries the report counts, unless simply those of its only instance."""
    if report.only:
        plural = "s" if len(report.only) > 1 else ""
        return f"only the canaries of instance{plural} {', '.join(report.only)}"
    if len(report.instances) > 1:
        return f"canaries of {len(report.instances)} instances: {', '.join(report.instances)}"
    return None


def render_text(report: Report) -> str:
    period, previous = report.period, report.previous_period
    out = [
        f"mailcanary deliverability report: {period.label} "
        f"({period.timezone}, {period.hours} hours)",
        f"compared with {previous.label}",
        *filter(None, [instances_line(report)]),
        "",
        f"Total: {headline(report.total)}",
        "",
    ]
    split = report.shows_instances
    headers = ["provider / route → mailbox", *(["instance"] if split else []), "canaries"]
    headers += [*(SHORT[v] for v in VERDICTS), "p50", "p95", "max", "inbox trend"]
    rows = []
    for provider in report.providers:
        rows.append(
            [provider.provider, *([""] if split else []), *_summary_cells(provider.summary)]
        )
        for pair in report.lines(provider):
            name = f"  {pair.route} → {pair.mailbox.address or pair.recipient}"
            if pair.new and pair.first_seen is not None:
                since = pair.first_seen.astimezone(period.zone)
                name += f" (new since {since:%a %H:%M})"
            instance = [pair.instance or "–"] if split else []
            rows.append([name, *instance, *_summary_cells(pair.summary)])
    out += [*_table(headers, rows, left=2 if split else 1), ""]

    out.append(f"Days ({period.timezone})")
    day_rows = [
        [
            f"{d.day.date:%a %Y-%m-%d}" + (f" ({d.day.hours}h)" if d.day.hours != 24 else ""),
            str(d.tally.total),
            *(_cell(d.tally, v) for v in VERDICTS),
            seconds(d.delivery.percentile(0.5)),
            seconds(d.delivery.percentile(0.95)),
        ]
        for d in report.days
    ]
    out += _table(["day", "canaries", *(SHORT[v] for v in VERDICTS), "p50", "p95"], day_rows)
    out.append("")

    out.append("Worst hours")
    for hour in report.worst_hours:
        detail = ", ".join(
            f"{v.value} {hour.tally.count(v)}" for v in VERDICTS[1:] if hour.tally.count(v)
        )
        out.append(f"  {hour.label}: {hour.bad} of {hour.tally.total} not in the inbox ({detail})")
    if not report.worst_hours:
        out.append("  none: every canary reached the inbox")
    out.append("")

    out.append("Failures")
    for group in report.failures[:SHOWN_FAILURES]:
        f = group.failure
        reply = " ".join(str(x) for x in (f.code, f.enhanced) if x)
        out.append(
            f"  {f.count:>5}  {f.verdict.value}  {f.route} → {f.recipient}  "
            f"{f.kind or ''} {reply}".rstrip()
        )
        out.append(f"         {group.explanation}")
        if f.message:
            out.append(f"         server said: {f.message.splitlines()[0][:160]}")
    if len(report.failures) > SHOWN_FAILURES:
        out.append(f"  … and {len(report.failures) - SHOWN_FAILURES} more (--format json)")
    if not report.failures:
        out.append("  none")
    out.append("")

    out.append("Incidents")
    if report.incidents is None:
        out.append("  alert history not available")
    for incident in report.incidents or ():
        fired = incident.fired_at.astimezone(period.zone)
        lasted = incident.seconds(min(report.generated_at, period.end))
        state = "still firing" if incident.resolved_at is None else "resolved"
        out.append(
            f"  {incident.kind} on {incident.route} → {incident.recipient}: fired "
            f"{fired:%a %d %b %H:%M}, {state} after {seconds(lasted)}"
        )
    if report.incidents == ():
        out.append("  none")
    out.append("")

    out.append("What to fix")
    for fix in report.fixes:
        out.append(f"  [{fix.severity}] {fix.text}")
        if fix.remedy:
            out.append(f"      → {fix.remedy}")
    if not report.fixes:
        out.append("  nothing: keep watching")
    return "\n".join(out) + "\n"
