"""The report as plain text, at most WIDTH columns: a terminal and a text email read it.

Top to bottom as the HTML: the verdict line, placement by provider (worst first),
authentication, DNS and blocklists, what to fix, the content filters' verdicts (when there is
something to show), the trend, worst hours, incidents, then the days and the failures'
details. Columns the width cannot hold (each verdict's count) stay in the HTML, JSON and CSV;
long names are cut with "…", prose is wrapped.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from monitor.core.models import Verdict
from monitor.reports.auth import CHECKS, AuthRates
from monitor.reports.document import Report
from monitor.reports.export import SHOWN_FAILURES
from monitor.reports.model import Summary, Tally
from monitor.templates.filters import local_time, percent, plural, seconds, trend_text

WIDTH = 100
LOST = (Verdict.MISSING, Verdict.LATE)
FAILED = (Verdict.SEND_FAILED, Verdict.CHECK_FAILED)
RATES = ["inbox", "spam", "lost", "failed"]
STATE_WORDS = {"green": "GREEN", "amber": "AMBER", "red": "RED", "grey": "NO DATA"}


def _rates(tally: Tally) -> list[str]:
    if not tally.total:
        return ["–"] * 4
    return [
        percent(tally.rate(Verdict.INBOX)),
        percent(tally.rate(Verdict.SPAM)),
        percent(tally.rate(*LOST)),
        percent(tally.rate(*FAILED)),
    ]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Columns padded to their widest cell, the first `left` left-aligned; the first column
    is cut so that a line never passes WIDTH."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    spare = WIDTH - (sum(widths) + 2 * (len(widths) - 1))
    if spare < 0:
        widths[0] = max(widths[0] + spare, 12)

    def line(cells: Sequence[str]) -> str:
        parts = [
            _cut(str(c), w).ljust(w) if i < left else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _wrap(text: str, indent: str = "  ", hang: str = "    ") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=hang) or [indent]


def headline(summary: Summary) -> str:
    tally, trends = summary.tally, summary.trends()
    if tally.total == 0:
        return "no canaries in this period"
    parts = [plural(tally.total, "canary"), f"inbox {percent(tally.rate(Verdict.INBOX))}"]
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
        plural_s = "s" if len(report.only) > 1 else ""
        return f"only the canaries of instance{plural_s} {', '.join(report.only)}"
    if len(report.instances) > 1:
        return f"canaries of {len(report.instances)} instances: {', '.join(report.instances)}"
    return None


def _summary_cells(summary: Summary) -> list[str]:
    times = summary.delivery
    return [
        str(summary.tally.total),
        *_rates(summary.tally),
        seconds(times.percentile(0.5)),
        seconds(times.percentile(0.95)),
        trend_text(summary.trends()["inbox_rate"]),
    ]


def _placement(report: Report) -> list[str]:
    split = report.shows_instances
    headers = ["provider / route → mailbox", *(["instance"] if split else []), "canaries"]
    headers += [*RATES, "p50", "p95", "inbox trend"]
    rows, new = [], []
    for provider in report.providers:
        rows.append(
            [provider.provider, *([""] if split else []), *_summary_cells(provider.summary)]
        )
        for pair in report.lines(provider):
            name = f"  {pair.route} → {pair.mailbox.address or pair.recipient}"
            if pair.new and pair.first_seen is not None:
                name += " (new)"
                of = f" of {pair.instance}" if split and pair.instance else ""
                since = local_time(pair.first_seen, report.period.timezone, "%a %H:%M")
                new.append(f"{pair.route} → {pair.recipient}{of} since {since}")
            instance = [pair.instance or "–"] if split else []
            rows.append([name, *instance, *_summary_cells(pair.summary)])
    legend = "lost: missing or late; failed: could not be sent or checked"
    return [
        "Placement by provider, worst first",
        *_table(headers, rows, left=2 if split else 1),
        *_wrap(f"({legend}; counts per verdict: --format json, csv or html)"),
        *(_wrap(f"new in this period: {'; '.join(new)}") if new else []),
    ]


def _auth_rows(rates: Sequence[AuthRates]) -> list[list[str]]:
    return [[r.name, str(r.canaries), *(percent(r.rate(c)) for c in CHECKS)] for r in rates]


def _authentication(report: Report) -> list[str]:
    auth = report.auth
    out = ["Authentication as the receivers saw it (pass rates)"]
    if not auth.recorded:
        return [*out, "  no Authentication-Results recorded in this period"]
    head = ["canaries", "SPF", "DKIM", "DMARC"]
    out += _table(["provider", *head], _auth_rows(auth.providers))
    out += _table(["sending account", *head], _auth_rows(auth.senders))
    for name, cause in auth.causes.items():
        out += _wrap(f"Spam at {name}: {cause.text}.")
    out.append(f"  (of the newest {auth.sample} delivered canaries of each mailbox)")
    return out


def _dns(report: Report) -> list[str]:
    out = ["DNS and blocklists (checked when this report was built)"]
    if report.dns is None:
        return [*out, "  not checked for this report (mailcanary dns ACCOUNT)"]
    for posture in report.dns:
        bad = [f for f in posture.findings if f.status != "ok"]
        state = "all checks pass" if not bad else plural(len(bad), "finding")
        out.append(f"  {posture.account} ({posture.domain}): {state}")
        if posture.compared_with is not None:
            since = local_time(posture.compared_with, report.period.timezone)
            moved = "; ".join(c.text for c in posture.changes) or "none"
            out += _wrap(f"changed since {since}: {moved}", "    ", "      ")
        for finding in bad:
            out += _wrap(
                f"[{finding.status}] {finding.check} {finding.target}: {finding.detail}",
                "    ",
                "      ",
            )
    return out


def _fixes(report: Report) -> list[str]:
    out = ["What to fix (most severe first, then the largest)"]
    for fix in report.fixes:
        out += _wrap(f"[{fix.severity}] {fix.text}", "  ", "      ")
        if fix.remedy:
            out += _wrap(f"→ {fix.remedy}", "      ", "        ")
    if not report.fixes:
        out.append("  nothing: keep watching")
    return out


def _content(report: Report) -> list[str]:
    shown = report.content.shown
    if not shown:
        return []
    out = ["Content filters as the receivers saw them (score against threshold, top rules)"]
    for m in shown:
        median = "?" if m.median is None else f"{m.median:g}"
        threshold = "?" if m.threshold is None else f"{m.threshold:g}"
        head = (
            f"{m.route} → {m.address or m.recipient} ({m.provider}), {m.filter}: "
            f"median score {median}, threshold {threshold}, {m.over} of {m.canaries} over, "
            f"{m.spam} in spam"
        )
        if m.judgement:
            head += f"; {m.pairing}"
        out += _wrap(head)
        for rule in m.rules:
            points = "" if rule.points is None else f" {rule.points:+g}"
            said = rule.explanation or rule.description or "no explanation at hand"
            hits = f"on {rule.hits} of {m.canaries}"
            out += _wrap(f"{rule.name}{points} {hits}: {said}", "    ", "        ")
        if not m.rules:
            out.append("    no rule counted against it")
    if more := len(report.content.worth) - len(shown):
        out.append(f"  … and {plural(more, 'more mailbox')} (--format json)")
    sample = report.content.sample
    out.append(f"  (of the newest {sample} delivered canaries of each mailbox; all: --format json)")
    return out


def _weeks(report: Report) -> list[str]:
    rows = [
        [
            f"{w.first_day:%Y-%m-%d}",
            str(w.tally.total),
            percent(w.tally.rate(Verdict.INBOX)),
            percent(w.tally.rate(Verdict.SPAM)),
            seconds(w.delivery.percentile(0.95)),
        ]
        for w in report.weeks
    ]
    if not rows:
        return []
    return [
        f"Trend: the last {len(rows)} periods",
        *_table(["from", "canaries", "inbox", "spam", "p95"], rows),
    ]


def _worst_hours(report: Report) -> list[str]:
    out = ["Worst hours"]
    for hour in report.worst_hours:
        detail = ", ".join(
            f"{v.value} {hour.tally.count(v)}"
            for v in Verdict
            if v is not Verdict.INBOX
            if hour.tally.count(v)
        )
        out += _wrap(f"{hour.label}: {hour.bad} of {hour.tally.total} not in the inbox ({detail})")
    if report.total.tally.total == 0:
        out.append("  no canaries in this period")
    elif not report.worst_hours:
        out.append("  none: every canary reached the inbox")
    return out


def _incidents(report: Report) -> list[str]:
    out = ["Incidents (alerts fired)"]
    if report.incidents is None:
        return [*out, "  alert history not available"]
    for incident in report.incidents:
        lasted = incident.seconds(min(report.generated_at, report.period.end))
        state = "still firing" if incident.resolved_at is None else "resolved"
        fired = local_time(incident.fired_at, report.period.timezone)
        out += _wrap(
            f"{incident.kind} on {incident.route} → {incident.recipient}: fired {fired}, "
            f"{state} after {seconds(lasted)}"
        )
    if not report.incidents:
        out.append("  none")
    return out


def _days(report: Report) -> list[str]:
    rows = [
        [
            f"{d.day.date:%a %Y-%m-%d}" + (f" ({d.day.hours}h)" if d.day.hours != 24 else ""),
            str(d.tally.total),
            *_rates(d.tally),
            seconds(d.delivery.percentile(0.5)),
            seconds(d.delivery.percentile(0.95)),
        ]
        for d in report.days
    ]
    headers = ["day", "canaries", *RATES, "p50", "p95"]
    return [f"Days ({report.period.timezone})", *_table(headers, rows)]


def _failures(report: Report) -> list[str]:
    out = ["Failures"]
    for group in report.failures[:SHOWN_FAILURES]:
        f = group.failure
        reply = " ".join(str(x) for x in (f.code, f.enhanced) if x)
        out += _wrap(
            f"{f.count:>5}  {f.verdict.value}  {f.route} → {f.recipient}  {f.kind or ''} {reply}"
        )
        out += _wrap(group.explanation, "         ", "         ")
        if f.message:
            said = f.message.splitlines()[0]
            out.append(_cut(f"         server said: {said}", WIDTH))
    if len(report.failures) > SHOWN_FAILURES:
        out.append(f"  … and {len(report.failures) - SHOWN_FAILURES} more (--format json)")
    if not report.failures:
        out.append("  none")
    return out


def render_text(report: Report) -> str:
    period, previous = report.period, report.previous_period
    out = [
        f"mailcanary deliverability report: {period.label} "
        f"({period.timezone}, {period.hours} hours)",
        f"compared with {previous.label}",
        *filter(None, [instances_line(report)]),
        "",
        *_wrap(f"{STATE_WORDS[report.headline.state]}: {report.headline.text}", "", "  "),
        f"Total: {headline(report.total)}",
    ]
    sections = [
        _placement(report),
        _authentication(report),
        _dns(report),
        _fixes(report),
        _content(report),
        _weeks(report),
        _worst_hours(report),
        _incidents(report),
        _days(report),
        _failures(report),
    ]
    for section in sections:
        if section:
            out += ["", *section]
    return "\n".join(out) + "\n"
