"""The alert state machine and the messages it produces: pure, table-driven."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from monitor.alerts import message as alertmsg
from monitor.alerts.state import (
    AlertKind,
    AlertState,
    Event,
    Policy,
    Status,
    Transition,
    observe,
    step,
)
from monitor.core.models import (
    Decision,
    Failure,
    Phase,
    PlannedProbe,
    ProbeRecord,
    Role,
    SendOutcome,
    Verdict,
)
from monitor.probe.verdict import not_found

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
AUTH = Failure("auth_failed", Phase.AUTH, False, "Error: authentication failed", 535, "5.7.8")
REJECTED = Failure("rejected", Phase.RCPT_TO, False, "5.1.1 no such user", 550, "5.1.1")
IMAP_DOWN = Failure("connect_failed", Phase.IMAP_CONNECT, True, "connection refused")
INTERRUPTED = not_found(None, "restart").failure


def record(
    verdict: Verdict,
    minute: int = 0,
    *,
    failure: Failure | None = None,
    delivery: float | None = None,
    probe_id: int = 1,
) -> ProbeRecord:
    planned_at = T0 + timedelta(minutes=minute)
    planned = PlannedProbe(
        token=f"t{probe_id}",
        route="r1",
        sender="alice",
        recipient="bob",
        slot=planned_at,
        planned_at=planned_at,
        deadline_at=planned_at + timedelta(minutes=10),
        message_id="<m@x>",
    )
    send = None
    if verdict is Verdict.SEND_FAILED:
        send = SendOutcome(phase=failure.phase if failure else Phase.AUTH, failure=failure)
    folder = {Verdict.SPAM: "Junk", Verdict.INBOX: "INBOX", Verdict.LATE: "INBOX"}.get(verdict)
    decision = Decision(
        verdict=verdict,
        folder=folder,
        role=Role.SPAM if verdict is Verdict.SPAM else (Role.INBOX if folder else None),
        delivery_seconds=delivery,
        failure=failure if verdict is Verdict.CHECK_FAILED else None,
    )
    return ProbeRecord(probe_id, planned, "final", send, None, decision, finished_at=planned_at)


def kinds(rec: ProbeRecord, policy: Policy | None = None) -> dict[str, str]:
    return {
        o.kind.value: "other" if o.other else ("bad" if o.bad else "good")
        for o in observe(rec, policy or Policy())
    }


GOOD, BAD, OTHER = "good", "bad", "other"
AFTER_FAILURE = {"spam": OTHER, "slow": OTHER}  # a canary that failed says nothing of these


@pytest.mark.parametrize(
    ("rec", "expected"),
    [
        (
            record(Verdict.SEND_FAILED, failure=AUTH),
            {"send_failed": BAD, "check_failed": OTHER, "missing": OTHER} | AFTER_FAILURE,
        ),
        (
            record(Verdict.CHECK_FAILED, failure=IMAP_DOWN),
            {"send_failed": GOOD, "check_failed": BAD, "missing": OTHER} | AFTER_FAILURE,
        ),
        (
            record(Verdict.MISSING),
            {"send_failed": GOOD, "check_failed": GOOD, "missing": BAD} | AFTER_FAILURE,
        ),
        # late counts as missing: the canary was not there by its deadline
        (
            record(Verdict.LATE, delivery=900),
            {"send_failed": GOOD, "check_failed": GOOD, "missing": BAD} | AFTER_FAILURE,
        ),
        (
            record(Verdict.SPAM, delivery=2),
            {"send_failed": GOOD, "check_failed": GOOD, "missing": GOOD, "spam": BAD}
            | {"slow": GOOD},
        ),
        (
            record(Verdict.INBOX, delivery=301),
            {"send_failed": GOOD, "check_failed": GOOD, "missing": GOOD, "spam": GOOD}
            | {"slow": BAD},
        ),
        # no hand-off time known: nothing said about slowness
        (
            record(Verdict.INBOX, delivery=None),
            {"send_failed": GOOD, "check_failed": GOOD, "missing": GOOD, "spam": GOOD},
        ),
        # interrupted before its hand-off (a crash): it may never have left, so nothing
        (record(Verdict.SEND_FAILED, failure=INTERRUPTED), {}),
    ],
)
def test_what_each_verdict_says_about_each_kind(rec: ProbeRecord, expected: dict) -> None:
    assert kinds(rec) == expected


def test_only_watched_kinds_are_observed_and_settings_failures_are_marked() -> None:
    policy = Policy(on=frozenset({AlertKind.SPAM, AlertKind.SEND_FAILED}))
    assert kinds(record(Verdict.SPAM, delivery=1), policy) == {"send_failed": GOOD, "spam": BAD}
    auth, auth_spam = observe(record(Verdict.SEND_FAILED, failure=AUTH), policy)
    rejected, _ = observe(record(Verdict.SEND_FAILED, failure=REJECTED), policy)
    assert auth.settings and not rejected.settings
    assert not auth_spam.settings  # only the failing kind carries it


def run(
    steps: list[str], policy: Policy, kind: AlertKind = AlertKind.SEND_FAILED
) -> tuple[AlertState, list[tuple[int, str]]]:
    """Feed steps ("bad", "good", "auth", "missing", "check", "crash", "tick@<minutes>") one
    minute apart; collect (step index, event) pairs."""
    state = AlertState("r1", "bob", kind)
    events: list[tuple[int, str]] = []
    for index, what in enumerate(steps):
        now = T0 + timedelta(minutes=index)
        if what.startswith("tick@"):
            observation = None
            now = T0 + timedelta(minutes=float(what[5:]))
        else:
            verdict, failure = {
                "bad": (Verdict.SEND_FAILED, REJECTED),
                "auth": (Verdict.SEND_FAILED, AUTH),
                "good": (Verdict.INBOX, None),
                "missing": (Verdict.MISSING, None),
                "check": (Verdict.CHECK_FAILED, IMAP_DOWN),
                "crash": (Verdict.SEND_FAILED, INTERRUPTED),
            }[what]
            rec = record(verdict, index, failure=failure, delivery=1.0, probe_id=index + 1)
            observation = next((o for o in observe(rec, policy) if o.kind is kind), None)
            if observation is None:
                continue  # the probe says nothing about this kind
        state, moved = step(state, observation, policy, now)
        events += [(index, t.event.value) for t in moved]
    return state, events


TWO = Policy(after_failures=2, resolve_after=1, remind_every=0)


@pytest.mark.parametrize(
    ("policy", "steps", "events", "status"),
    [
        (TWO, ["bad"], [], Status.PENDING),
        (TWO, ["bad", "bad"], [(1, "firing")], Status.FIRING),
        (TWO, ["bad", "bad", "bad", "bad"], [(1, "firing")], Status.FIRING),
        (TWO, ["bad", "good"], [], Status.OK),
        # flapping below the threshold never fires
        (TWO, ["bad", "good", "bad", "good", "bad", "good"], [], Status.OK),
        # recovery: one message; a new episode needs after_failures again
        (
            TWO,
            ["bad", "bad", "good", "bad", "good", "bad", "bad"],
            [(1, "firing"), (2, "resolved"), (6, "firing")],
            Status.FIRING,
        ),
        # resolve_after=2: a firing alert does not resolve on a lone good canary
        (
            replace(TWO, resolve_after=2),
            ["bad", "bad", "good", "bad", "good", "bad", "good", "good"],
            [(1, "firing"), (7, "resolved")],
            Status.RESOLVED,
        ),
        # settings broke: first occurrence fires, unless turned off
        (TWO, ["auth"], [(0, "firing")], Status.FIRING),
        (replace(TWO, immediate_on_settings=False), ["auth"], [], Status.PENDING),
        (Policy(after_failures=3, remind_every=0), ["bad", "bad", "bad"], [(2, "firing")], None),
    ],
)
def test_state_machine(policy: Policy, steps: list[str], events: list, status) -> None:
    state, seen = run(steps, policy)
    assert seen == events
    if status is not None:
        assert state.status is status


MISSING = AlertKind.MISSING


@pytest.mark.parametrize(
    ("policy", "steps", "events", "status"),
    [
        # a missing alert resolves once the route fails another way (here: a wrong password)
        (
            TWO,
            ["missing", "missing", "auth", "auth", "auth"],
            [(1, "firing"), (2, "resolved")],
            Status.RESOLVED,
        ),
        (TWO, ["missing", "missing", "check"], [(1, "firing"), (2, "resolved")], Status.RESOLVED),
        # with resolve_after = 2, two canaries of another kind are needed, as two good ones are
        (
            replace(TWO, resolve_after=2),
            ["missing", "missing", "auth", "missing", "auth", "auth"],
            [(1, "firing"), (5, "resolved")],
            Status.RESOLVED,
        ),
        # another kind's failure neither breaks nor feeds a pending streak: alternating still fires
        (TWO, ["missing", "auth", "missing"], [(2, "firing")], Status.FIRING),
        (TWO, ["missing", "auth"], [], Status.PENDING),
        # a probe interrupted by a crash before its hand-off tells nothing: no missing alert
        (TWO, ["crash", "crash", "crash"], [], Status.OK),
        (TWO, ["missing", "crash", "missing"], [(2, "firing")], Status.FIRING),
    ],
)
def test_an_alert_gives_way_to_another_kind(
    policy: Policy, steps: list[str], events: list, status: Status
) -> None:
    state, seen = run(steps, policy, MISSING)
    assert seen == events
    if status is not None:
        assert state.status is status


def test_after_a_crash_and_a_wrong_password_only_send_failed_fires() -> None:
    """The issue's sequence: missing canaries fire, the daemon is killed mid-send, then the
    password is wrong. Every kind's state is stepped as the alerting loop would."""
    states = {kind: AlertState("r1", "bob", kind) for kind in AlertKind}
    sequence = [(Verdict.MISSING, None)] * 2 + [(Verdict.SEND_FAILED, INTERRUPTED)]
    sequence += [(Verdict.SEND_FAILED, AUTH)] * 3
    events = []
    for index, (verdict, failure) in enumerate(sequence):
        rec = record(verdict, index, failure=failure, probe_id=index + 1)
        for observation in observe(rec, TWO):
            now = T0 + timedelta(minutes=index)
            kind = observation.kind
            states[kind], moved = step(states[kind], observation, TWO, now)
            events += [(index, kind.value, t.event.value) for t in moved]
    assert sorted(events) == [
        (1, "missing", "firing"),
        (3, "missing", "resolved"),
        (3, "send_failed", "firing"),
    ]
    assert [k for k, s in states.items() if s.open] == [AlertKind.SEND_FAILED]


@pytest.mark.parametrize(
    ("remind_every", "ticks", "reminded_at"),
    [
        # fired at minute 1; reminders every 60 minutes of wall time after the last message
        (3600.0, [30, 61, 90, 121, 180], [61, 121]),
        (3600.0, [60.9], []),
        (0.0, [61, 600, 6000], []),
    ],
)
def test_reminders(remind_every: float, ticks: list[float], reminded_at: list[float]) -> None:
    policy = replace(TWO, remind_every=remind_every)
    steps = ["bad", "bad", *(f"tick@{t}" for t in ticks)]
    state, events = run(steps, policy)
    got = [ticks[index - 2] for index, event in events if event == "reminder"]
    assert got == reminded_at
    assert state.seq == 1 + len(reminded_at)


def test_no_reminder_unless_firing_and_resolution_stops_them() -> None:
    policy = replace(TWO, remind_every=60.0)
    state, events = run(["bad", "tick@30"], policy)
    assert events == [] and state.status is Status.PENDING
    state, events = run(["bad", "bad", "good", "tick@600"], policy)
    assert [e for _, e in events] == ["firing", "resolved"]


def test_replayed_or_older_observations_change_nothing() -> None:
    policy = TWO
    state = AlertState("r1", "bob", AlertKind.SEND_FAILED)
    first = observe(record(Verdict.SEND_FAILED, 5, failure=REJECTED), policy)[0]
    state, _ = step(state, first, policy, T0)
    again, moved = step(state, first, policy, T0)
    older = observe(record(Verdict.INBOX, 4, delivery=1.0), policy)[0]
    after_older, moved_older = step(state, older, policy, T0)
    assert (again, moved, after_older, moved_older) == (state, [], state, [])


def test_transition_ids_are_stable_and_never_reused() -> None:
    policy = replace(TWO, remind_every=60.0)
    state = AlertState("r1", "bob", AlertKind.SPAM)
    ids = []
    for minute, verdict in enumerate([Verdict.SPAM, Verdict.SPAM, Verdict.INBOX, Verdict.SPAM]):
        rec = record(verdict, minute, delivery=1.0)
        observation = next(o for o in observe(rec, policy) if o.kind is AlertKind.SPAM)
        state, moved = step(state, observation, policy, T0 + timedelta(minutes=minute))
        ids += [t.id for t in moved]
    assert ids == ["r1/bob/spam/1", "r1/bob/spam/2"]
    assert state.since == T0 + timedelta(minutes=3)  # the new episode's first bad canary


# ---------------------------------------------------------------- messages


def firing(kind: AlertKind, rec: ProbeRecord, policy: Policy = TWO) -> Transition:
    state = AlertState("r1", "bob", kind, last_good_at=T0 - timedelta(hours=1))
    observation = next(o for o in observe(rec, policy) if o.kind is kind)
    for minute in range(policy.after_failures):
        later = replace(
            observation,
            evidence=replace(observation.evidence, planned_at=T0 + timedelta(minutes=minute)),
        )
        state, moved = step(state, later, policy, T0 + timedelta(minutes=minute))
        if moved:
            assert moved[0].event is Event.FIRING
            return moved[0]
    raise AssertionError("never fired")


def test_the_json_alert_has_the_documented_fields_and_says_what_broke() -> None:
    transition = firing(AlertKind.SEND_FAILED, record(Verdict.SEND_FAILED, failure=AUTH))
    alert = alertmsg.describe(
        transition,
        mailbox="bob@example.test",
        instance="eu-1",
        public_url="https://canary.example.org",
    )
    documented = alertmsg.__doc__ or ""
    for field in alert:
        assert f"    {field}" in documented or f", {field}" in documented, field
    assert alert["schema"] == "mailcanary.alert.v1"
    assert (alert["event"], alert["status"], alert["kind"]) == ("firing", "firing", "send_failed")
    assert alert["since"] == T0.isoformat()
    assert alert["last_good_at"] == (T0 - timedelta(hours=1)).isoformat()
    failure = alert["failure"]
    assert (failure["code"], failure["enhanced"], failure["kind"]) == (535, "5.7.8", "auth_failed")
    assert failure["explanation"] and failure["remedy"]
    assert alert["investigate"] == "mailcanary history --route r1"
    text = alertmsg.text_body(alert)
    assert "535 5.7.8" in text and failure["remedy"] in text and "bob@example.test" in text
    page = f"https://canary.example.org/probe/{alert['canary']['probe_id']}"
    assert alert["page"] == page and f"Status page:      {page}\n" in text
    without = alertmsg.describe(transition, mailbox=None, instance="eu-1")
    assert without["page"] is None and "Status page" not in alertmsg.text_body(without)


def test_spam_alert_names_the_folder_and_renders_everywhere() -> None:
    transition = firing(AlertKind.SPAM, record(Verdict.SPAM, delivery=1.5))
    alert = alertmsg.describe(transition, mailbox=None, instance="default")
    assert alert["canary"]["folder"] == "Junk" and alert["failure"] is None
    assert alert["advice"]["remedy"]
    assert 'folder "Junk"' in alertmsg.text_body(alert)
    assert "folder &#34;Junk&#34;" in alertmsg.html_body(alert)  # markupsafe escapes " as &#34;
    assert alertmsg.slack(alert)["text"].startswith("*FIRING: canaries land in spam")
    (am,) = alertmsg.alertmanager(alert, remind_every=3600)
    assert am["labels"] == {
        "alertname": "mailcanary_spam",
        "instance": "default",
        "route": "r1",
        "recipient": "bob",
        "kind": "spam",
    }
    assert am["endsAt"] == (T0 + timedelta(minutes=1, hours=2)).isoformat()


def test_html_and_slack_escape_what_servers_say() -> None:
    hostile = replace(REJECTED, message="<script>alert(1)</script> & more")
    transition = firing(AlertKind.SEND_FAILED, record(Verdict.SEND_FAILED, failure=hostile))
    alert = alertmsg.describe(transition, mailbox=None, instance="default")
    assert "<script>" not in alertmsg.html_body(alert)
    assert "<script>" not in alertmsg.slack(alert)["text"]
