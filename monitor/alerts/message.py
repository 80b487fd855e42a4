"""What an alert says: one canonical dict (`describe`) and its renderings, all pure.

Every rendering (email text and HTML, Slack, Alertmanager) is derived from the canonical
dict, which is built from whitelisted fields only: names from the config, times, verdicts,
SMTP codes, the server's reply text and the catalogue's advice. Passwords, webhook URLs and
signing secrets are never passed in, so they cannot come out.

The `json` webhook format sends the canonical dict as is. Its fields are a stable interface
(`schema` changes if one ever changes meaning); times are ISO 8601 UTC, absent values null:

    schema          "mailcanary.alert.v1"
    id              the transition: "<route>/<recipient>/<kind>/<n>"; the same for every
                    channel (each delivery also has its own X-Mailcanary-Delivery header)
    event           firing | reminder | resolved | test
    status          firing | resolved (the state after this event); null for a test
    kind            send_failed | check_failed | missing | spam | slow; null for a test
    title           one line for a human
    route           the route's name
    sender          its sending account's name
    recipient       the seed mailbox's account name
    mailbox         the seed mailbox's address
    since           planned time of the first bad canary of this episode
    at              when this event happened
    fired_at        when it fired; null for a test
    resolved_at     when it resolved; null while firing
    last_good_at    planned time of the newest good canary (of this kind); null: never
    consecutive_failures   bad canaries in a row so far; null when resolved
    canary          the newest bad canary (for resolved: the good one that ended it):
                    {probe_id, planned_at, verdict, folder, delivery_seconds, auth, content},
                    auth being {spf, dkim, dmarc} as the receiver's Authentication-Results
                    wrote them (the checks it wrote), or null when none were recorded;
                    content the receiver's content filter in one line (score/threshold
                    and its top rules, e.g. "spamassassin 8.9/5 DEAR_WINNER +3.1"), or null
    failure         {kind, phase, transient, code, enhanced, message, explanation, remedy}
                    of that canary, or null (spam, slow and missing have no failure)
    advice          {explanation, remedy} for the kind when there is no failure
    investigate     the command that shows the canaries: mailcanary history --route …
    page            that canary's status page ([monitor] public_url/probe/<id>), null when
                    public_url is not set
    instance        the monitoring instance's name
"""

from __future__ import annotations

import shlex
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from monitor.alerts.state import AlertKind, Event, Evidence, Status, Transition
from monitor.core.catalogue import advise
from monitor.core.durations import format_duration
from monitor.templates import render
from monitor.templates.filters import local_time

SCHEMA = "mailcanary.alert.v1"

HEADLINE = {
    AlertKind.SEND_FAILED: "canaries cannot be sent",
    AlertKind.CHECK_FAILED: "the seed mailbox cannot be checked",
    AlertKind.MISSING: "canaries do not arrive",
    AlertKind.SPAM: "canaries land in spam",
    AlertKind.SLOW: "canaries arrive slowly",
}

# For kinds that come without an SMTP or IMAP failure, so the catalogue has nothing to say.
KIND_ADVICE = {
    AlertKind.MISSING: (
        "The canary was handed over but never appeared in the inbox or the spam folder.",
        "Look the queue id up in the sending server's log; check the recipient's filters, "
        "quarantine and forwarding rules.",
    ),
    AlertKind.SPAM: (
        "The canary was delivered, but into the spam folder.",
        "Check SPF, DKIM and DMARC of the sending domain (mailcanary dns ACCOUNT), the "
        "sending IP's blocklist listings, and the spam headers of the canary (mailcanary history).",
    ),
    AlertKind.SLOW: (
        "The canary arrived, but later than the configured slow_after.",
        "Look for greylisting, a long queue or retries in the sending server's log.",
    ),
}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _canary(evidence: Evidence | None) -> dict[str, Any] | None:
    if evidence is None:
        return None
    return {
        "probe_id": evidence.probe_id,
        "planned_at": _iso(evidence.planned_at),
        "verdict": evidence.verdict.value,
        "folder": evidence.folder,
        "delivery_seconds": evidence.delivery_seconds,
        "auth": dict(evidence.auth) or None,
        "content": evidence.content or None,
    }


def _failure(evidence: Evidence | None) -> dict[str, Any] | None:
    failure = evidence.failure if evidence else None
    if failure is None:
        return None
    advice = advise(failure)
    return {
        "kind": failure.kind,
        "phase": failure.phase.value,
        "transient": failure.transient,
        "code": failure.code,
        "enhanced": failure.enhanced,
        "message": failure.message,
        "explanation": advice.explanation,
        "remedy": advice.remedy,
    }


def investigate(route: str) -> str:
    return f"mailcanary history --route {shlex.quote(route)}"


def page(public_url: str | None, route: str, recipient: str, probe_id: int | None) -> str | None:
    """The status page of the canary (or, without one, of the mailbox) at `public_url`."""
    if not public_url:
        return None
    if probe_id is not None:
        return f"{public_url}/probe/{probe_id}"
    return f"{public_url}/route/{quote(route, safe='')}/{quote(recipient, safe='')}"


def describe(
    transition: Transition, *, mailbox: str | None, instance: str, public_url: str | None = None
) -> dict[str, Any]:
    """The canonical alert: the `json` webhook body and the source of every rendering."""
    state = transition.state
    resolved = transition.event is Event.RESOLVED
    shown = state.recovery if resolved and state.recovery else state.evidence
    failure = None if resolved else _failure(state.evidence)
    kind_advice = KIND_ADVICE.get(state.kind)
    word = "RESOLVED" if resolved else transition.event.value.upper()
    return {
        "schema": SCHEMA,
        "id": transition.id,
        "event": transition.event.value,
        "status": Status.RESOLVED.value if resolved else Status.FIRING.value,
        "kind": state.kind.value,
        "title": f"{word}: {HEADLINE[state.kind]} on route {state.route} to {state.recipient}",
        "route": state.route,
        "sender": state.evidence.sender if state.evidence else None,
        "recipient": state.recipient,
        "mailbox": mailbox,
        "since": _iso(state.since),
        "at": _iso(transition.at),
        "fired_at": _iso(state.fired_at),
        "resolved_at": _iso(state.resolved_at),
        "last_good_at": _iso(state.last_good_at),
        "consecutive_failures": state.bad_streak if not resolved else None,
        "canary": _canary(shown),
        "failure": failure,
        "advice": (
            {"explanation": kind_advice[0], "remedy": kind_advice[1]}
            if kind_advice and failure is None and not resolved
            else None
        ),
        "investigate": investigate(state.route),
        "page": page(public_url, state.route, state.recipient, shown.probe_id if shown else None),
        "instance": instance,
    }


def describe_test(*, instance: str, at: datetime, channel: str) -> dict[str, Any]:
    """What `mailcanary test-alert` sends: the same schema, no alert behind it."""
    return {
        "schema": SCHEMA,
        "id": f"test/{instance}/{at.isoformat()}",
        "event": Event.TEST.value,
        "status": None,
        "kind": None,
        "title": f"TEST: mailcanary alert channel {channel} works",
        "route": None,
        "sender": None,
        "recipient": None,
        "mailbox": None,
        "since": None,
        "at": _iso(at),
        "fired_at": None,
        "resolved_at": None,
        "last_good_at": None,
        "consecutive_failures": None,
        "canary": None,
        "failure": None,
        "advice": None,
        "investigate": "mailcanary alerts",
        "page": None,
        "instance": instance,
    }


# ---------------------------------------------------------------- renderings


def _when(value: str | None, timezone: str) -> str:
    return local_time(value, timezone, "%Y-%m-%d %H:%M:%S")


def failure_line(failure: dict[str, Any]) -> str:
    """ "rejected during rcpt_to: 550 5.7.1 Relay denied": the server's text usually
    starts with the enhanced code itself, which is then not repeated."""
    code = " ".join(str(p) for p in (failure["code"], failure["enhanced"]) if p)
    said = failure["message"] or ""
    if failure["enhanced"] and said.startswith(failure["enhanced"]):
        said = said[len(failure["enhanced"]) :].lstrip()
    return f"{failure['kind']} during {failure['phase']}: {f'{code} {said}'.strip()}"


COMMANDS = ("Investigate",)  # rows whose value is a command: monospace in HTML


def lines(alert: dict[str, Any], timezone: str = "UTC") -> list[tuple[str, str]]:
    """(label, value) rows shared by the text, HTML and Slack renderings; times in
    `timezone` with UTC beside them."""
    rows: list[tuple[str, str]] = []
    if alert["route"] is not None:
        sender = f" (from {alert['sender']})" if alert["sender"] else ""
        mailbox = f" <{alert['mailbox']}>" if alert["mailbox"] else ""
        rows.append(("Route", f"{alert['route']}{sender} to {alert['recipient']}{mailbox}"))
    if alert["since"] is not None:
        since = _when(alert["since"], timezone)
        if alert["event"] == Event.RESOLVED.value and alert["resolved_at"]:
            took = datetime.fromisoformat(alert["resolved_at"]) - datetime.fromisoformat(
                alert["since"]
            )
            since += f" (lasted {format_duration(max(took, timedelta()).total_seconds())})"
        elif alert["consecutive_failures"]:
            since += f" ({alert['consecutive_failures']} bad canaries in a row)"
        rows.append(("Since", since))
    if alert["route"] is not None:
        rows.append(("Last good canary", _when(alert["last_good_at"], timezone)))
    canary = alert["canary"]
    if canary is not None:
        planned = _when(canary["planned_at"], timezone)
        facts = [f"#{canary['probe_id']} planned {planned}", canary["verdict"]]
        if canary["folder"]:
            facts.append(f'folder "{canary["folder"]}"')
        if canary["delivery_seconds"] is not None:
            facts.append(f"delivered in {format_duration(canary['delivery_seconds'])}")
        label = "Recovered with" if alert["event"] == Event.RESOLVED.value else "Last canary"
        rows.append((label, ", ".join(facts)))
        if canary.get("auth"):
            shown = " ".join(f"{check}={result}" for check, result in canary["auth"].items())
            rows.append(("Authentication", shown))
        if canary.get("content"):
            rows.append(("Content filter", canary["content"]))
    failure = alert["failure"]
    if failure is not None:
        rows.append(("Failure", failure_line(failure)))
    advice = failure or alert["advice"]
    if advice is not None:
        rows.append(("Why", advice["explanation"]))
        rows.append(("What to do", advice["remedy"]))
    rows.append(("Investigate", alert["investigate"]))
    if alert.get("page"):  # absent from alerts queued by older versions
        rows.append(("Status page", alert["page"]))
    rows.append(("Instance", alert["instance"]))
    return rows


def subject(alert: dict[str, Any]) -> str:
    return f"[mailcanary] {alert['title']}"


def text_body(alert: dict[str, Any], timezone: str = "UTC") -> str:
    rows = lines(alert, timezone)
    width = max(len(label) for label, _ in rows) + 2
    body = [alert["title"], ""]
    body += [f"{label + ':':<{width}}{value}" for label, value in rows]
    return "\n".join(body) + "\n"


def html_body(alert: dict[str, Any], timezone: str = "UTC") -> str:
    return render("alert.html", alert=alert, rows=lines(alert, timezone), commands=COMMANDS)


def _slack_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(alert: dict[str, Any], timezone: str = "UTC") -> dict[str, Any]:
    """Slack incoming webhooks; Mattermost and Discord's /slack endpoint take the same."""
    rows = "\n".join(
        f"*{label}:* " + (f"`{value}`" if label in COMMANDS else _slack_escape(value))
        for label, value in lines(alert, timezone)
    )
    return {"text": f"*{_slack_escape(alert['title'])}*\n{rows}"}


def alertmanager(alert: dict[str, Any], *, remind_every: float) -> list[dict[str, Any]]:
    """Alertmanager's POST /api/v2/alerts body. A firing alert is given an end twice the
    reminder period away so Alertmanager keeps it while reminders refresh it; without
    reminders it lapses after Alertmanager's resolve_timeout."""
    labels = {
        "alertname": f"mailcanary_{alert['kind'] or 'test'}",
        "instance": alert["instance"],
    }
    for key in ("route", "recipient", "kind"):
        if alert[key] is not None:
            labels[key] = alert[key]
    annotations = {"summary": alert["title"], "description": text_body(alert)}
    body: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": alert["fired_at"] or alert["at"],
    }
    if alert["event"] in (Event.RESOLVED.value, Event.TEST.value):
        body["endsAt"] = alert["resolved_at"] or alert["at"]
    elif remind_every > 0:
        at = datetime.fromisoformat(alert["at"])
        body["endsAt"] = (at + timedelta(seconds=2 * remind_every)).isoformat()
    return [body]


def webhook_body(
    alert: dict[str, Any], fmt: str, *, remind_every: float, timezone: str = "UTC"
) -> Any:
    """The JSON value to POST for a webhook of format `fmt` (alert_settings.FORMATS)."""
    if fmt == "slack":
        return slack(alert, timezone)
    if fmt == "alertmanager":
        return alertmanager(alert, remind_every=remind_every)
    return alert
