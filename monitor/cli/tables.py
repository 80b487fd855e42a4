"""How probes look to people and programs: stable JSON fields and terminal tables."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from monitor.content.spamscore import brief, parse_scores, score_json
from monitor.core.catalogue import Advice, advise
from monitor.core.durations import format_duration
from monitor.core.models import Failure, PlannedProbe, ProbeRecord, Verdict
from monitor.core.receipt import AuthResults, auth_json, hops_json, spam_json

VERDICT_STYLE = {
    Verdict.INBOX: "green",
    Verdict.SPAM: "yellow",
    Verdict.LATE: "yellow",
    Verdict.MISSING: "red",
    Verdict.SEND_FAILED: "red",
    Verdict.CHECK_FAILED: "magenta",
}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def failure_of(record: ProbeRecord) -> Failure | None:
    if record.decision is not None and record.decision.failure is not None:
        return record.decision.failure
    return record.send.failure if record.send else None


def advice_of(record: ProbeRecord) -> Advice | None:
    """The stored advice; a record not read from the store (a probe just run) gets the same
    words from the catalogue that the store was given."""
    failure = failure_of(record)
    if failure is None:
        return None
    return record.advice or advise(failure)


def record_dict(record: ProbeRecord) -> dict[str, Any]:
    """One canary as JSON; these field names are a stable interface."""
    planned, send, decision = record.planned, record.send, record.decision
    failure = failure_of(record)
    advice = advice_of(record)
    receipt = record.sighting.receipt if record.sighting else None
    code = enhanced = message = None
    if send is not None:
        if send.failure is not None:
            # The refusal itself; a TLS or connect failure has no reply code to show.
            code, enhanced, message = send.failure.code, send.failure.enhanced, send.failure.message
        elif send.last_reply is not None:
            reply = send.last_reply
            code, enhanced, message = reply.code, reply.enhanced, reply.text
    return {
        "id": record.id,
        "route": planned.route,
        "from": planned.sender,
        "to": planned.recipient,
        "verdict": decision.verdict.value if decision else None,
        "state": record.state,
        "folder": decision.folder if decision else None,
        "folder_role": decision.role.value if decision and decision.role else None,
        "delivery_seconds": decision.delivery_seconds if decision else None,
        "arrival_source": decision.arrival_source.value
        if decision and decision.arrival_source
        else None,
        "smtp_code": code,
        "smtp_enhanced": enhanced,
        "smtp_message": message,
        "smtp_replies": [
            {
                "phase": r.phase.value,
                "code": r.code,
                "enhanced": r.enhanced,
                "text": r.text,
                "shared": r.shared,
            }
            for r in (send.replies if send else ())
        ],
        "queue_id": send.queue_id if send else None,
        "tls_version": send.tls_version if send else None,
        "failure": failure.kind if failure else None,
        "failure_phase": failure.phase.value if failure else None,
        "transient": failure.transient if failure else None,
        "failure_message": failure.message if failure else None,
        "explanation": advice.explanation if advice else None,
        "remedy": advice.remedy if advice else None,
        "auth": auth_json(receipt.auth) if receipt else None,
        "hops": hops_json(receipt.hops) if receipt else None,
        "spam_headers": spam_json(receipt) if receipt else None,
        # The receivers' content verdicts read from those headers: score, threshold, rules.
        "spam_scores": score_json(parse_scores(spam_json(receipt))) if receipt else None,
        "reason": decision.reason if decision else None,
        "message_id": planned.message_id,
        "token": planned.token,
        "planned_at": _iso(planned.planned_at),
        "sent_at": _iso(send.handoff_at if send else None),
        "arrived_at": _iso(decision.arrived_at if decision else None),
        # the arrival surely lies between these (null: unbounded on that side)
        "arrived_after": _iso(decision.arrived_after if decision else None),
        "arrived_before": _iso(decision.arrived_before if decision else None),
        "deadline_at": _iso(planned.deadline_at),
        "instance": planned.instance,
    }


def json_line(record: ProbeRecord) -> str:
    return json.dumps(record_dict(record), ensure_ascii=False)


def verdict_text(record: ProbeRecord | None, stage: str) -> Text:
    if record is None or record.decision is None:
        return Text(stage, style="dim")
    v = record.decision.verdict
    return Text(v.value, style=f"bold {VERDICT_STYLE[v]}")


def _detail(record: ProbeRecord | None) -> str:
    if record is None:
        return ""
    failure = failure_of(record)
    if failure is not None:
        advice = advice_of(record)
        remedy = f" — {advice.remedy}" if advice else ""
        return shorten(f"{failure.kind} ({failure.phase.value}): {failure.message}", 90) + remedy
    parts = []
    if record.decision is not None and record.decision.reason:
        parts.append(record.decision.reason)
    elif record.send is not None and record.send.queue_id:
        parts.append(f"queued as {record.send.queue_id}")
    receipt = record.sighting.receipt if record.sighting else None
    if receipt is not None and receipt.auth is not None:
        parts.append(_auth_summary(receipt.auth))
    if receipt is not None:
        parts.append(brief(parse_scores(spam_json(receipt))))
    return "; ".join(part for part in parts if part)


def shorten(text: str, width: int) -> str:
    """At most `width` characters, cut between words: never inside a port or a code."""
    return textwrap.shorten(text, width=width, placeholder=" …")


def _auth_summary(auth: AuthResults) -> str:
    """What the receiver made of the canary's authentication: "spf=pass dkim=pass dmarc=fail"."""
    checks = [("spf", auth.spf), *(("dkim", c) for c in auth.dkim), ("dmarc", auth.dmarc)]
    return " ".join(f"{name}={check.result}" for name, check in checks if check is not None)


def probe_table(
    rows: list[tuple[PlannedProbe, str, ProbeRecord | None]], *, title: str | None = None
) -> Table:
    table = Table(title=title, header_style="bold", expand=False)
    for column in ("when", "route", "to", "verdict", "folder", "delivery", "smtp"):
        table.add_column(column, no_wrap=column in ("when", "verdict", "delivery", "smtp"))
    table.add_column("detail", overflow="fold", min_width=24)
    for planned, stage, record in rows:
        decision = record.decision if record else None
        reply = record_dict(record) if record else {}
        smtp = " ".join(
            str(part) for part in (reply.get("smtp_code"), reply.get("smtp_enhanced")) if part
        )
        delivery = decision.delivery_seconds if decision else None
        table.add_row(
            planned.planned_at.astimezone().strftime("%m-%d %H:%M:%S"),
            planned.route,
            planned.recipient,
            verdict_text(record, stage),
            (decision.folder or "") if decision else "",
            format_duration(delivery) if delivery is not None else "",
            smtp,
            _detail(record),
        )
    return table


def status_table(
    rows: list[tuple[str, str, ProbeRecord | None, datetime | None, int, list[str]]],
    *,
    title: str | None = None,
    caption: str | None = None,
) -> Table:
    """Rows of (route, to, newest final probe, newest inbox time, probes in flight, firing
    alert kinds)."""
    table = Table(title=title, caption=caption, header_style="bold", expand=False)
    columns = (
        "route",
        "to",
        "last verdict",
        "when",
        "last inbox",
        "delivery",
        "in flight",
        "alerts",
    )
    for column in columns:
        table.add_column(column, no_wrap=column not in ("route", "to"))
    table.add_column("detail", overflow="fold", min_width=24)
    for route, to, last, last_inbox_at, in_flight, alerts in rows:
        delivery = last.decision.delivery_seconds if last and last.decision else None
        table.add_row(
            route,
            to,
            verdict_text(last, "never"),
            _local(last.planned.planned_at) if last else "",
            _local(last_inbox_at) if last_inbox_at else Text("never", style="dim"),
            format_duration(delivery) if delivery is not None else "",
            str(in_flight) if in_flight else "",
            Text(", ".join(alerts), style="bold red") if alerts else "",
            _detail(last),
        )
    return table


def _local(moment: datetime) -> str:
    return moment.astimezone().strftime("%m-%d %H:%M:%S")
