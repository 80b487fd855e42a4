"""The Nagios plugin line: status word, exit code, summary and perfdata per the guidelines."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta

import pytest

from monitor.cli.nagios import (
    MAX_NAMED,
    Canary,
    canaries,
    perf_label,
    plugin_error,
    plugin_output,
)
from monitor.core.models import (
    Decision,
    Failure,
    Phase,
    PlannedProbe,
    ProbeRecord,
    SendOutcome,
    Verdict,
)
from monitor.probe.verdict import exit_code

# A perfdata item as the guidelines define it: 'label'=value[UOM];warn;crit;min;max, where a
# quoted label may hold anything but a lone quote, and a bare one no space, quote or `=`.
PERF_ITEM = re.compile(
    r"(?:'(?P<quoted>(?:[^']|'')+)'|(?P<bare>[^'=\s]+))"
    r"=(?P<value>U|-?[0-9.]+)(?P<uom>[a-zA-Z%]*)"
    r"(?:;(?P<warn>[^;\s]*))?(?:;(?P<crit>[^;\s]*))?(?:;(?P<min>[-0-9.]*))?(?:;(?P<max>[-0-9.]*))?"
)


def perfdata(line: str) -> dict[str, tuple[str, str, str | None]]:
    """label -> (value, uom, min), parsed the way a grapher would; fails on any stray text."""
    _, bar, data = line.partition(" | ")
    assert bar, line
    found: dict[str, tuple[str, str, str | None]] = {}
    position = 0
    for match in PERF_ITEM.finditer(data):
        assert data[position : match.start()].strip() == "", data
        position = match.end()
        label = match["bare"] or match["quoted"].replace("''", "'")
        found[label] = (match["value"], match["uom"], match["min"])
    assert data[position:].strip() == "", data
    return found


def test_all_in_the_inbox_is_ok_with_every_delivery_time() -> None:
    line, code = plugin_output(
        [
            Canary("gmail", "seed", Verdict.INBOX, 3.2),
            Canary("gmail", "other", Verdict.INBOX, 0.0004),
            Canary("alice->bob", "bob", Verdict.INBOX, 61.25),
        ]
    )
    assert code == 0
    assert line.startswith("MAILCANARY OK - 3/3 inbox | ")
    assert "\n" not in line
    assert perfdata(line) == {
        "delivery_gmail:seed": ("3.2", "s", "0"),
        "delivery_gmail:other": ("0", "s", "0"),
        "delivery_alice->bob:bob": ("61.25", "s", "0"),
    }


def test_spam_and_late_warn_and_name_the_canaries() -> None:
    line, code = plugin_output(
        [
            Canary("gmail", "seed", Verdict.INBOX, 2.0),
            Canary("gmail", "yuki", Verdict.LATE, 700.0),
            Canary("outlook", "carol", Verdict.SPAM, 4.5),
        ]
    )
    assert code == 1
    text = line.split(" | ")[0]
    assert text == "MAILCANARY WARNING - 1/3 inbox; spam: outlook:carol; late: gmail:yuki"
    assert perfdata(line)["delivery_gmail:yuki"] == ("700", "s", "0")


def test_missing_and_refused_are_critical_with_unknown_delivery_times() -> None:
    line, code = plugin_output(
        [
            Canary("gmail", "seed", Verdict.SPAM, 8.0),
            Canary("gmail", "slow", Verdict.MISSING),
            Canary("mallory", "bob", Verdict.SEND_FAILED, failure="auth_failed"),
            Canary("gmail", "bob", Verdict.INBOX, 1.5),
        ]
    )
    assert code == 2
    assert line.split(" | ")[0] == (
        "MAILCANARY CRITICAL - 1/4 inbox; missing: gmail:slow; "
        "send_failed: mallory:bob (auth_failed); spam: gmail:seed"
    )
    data = perfdata(line)
    # Still reported, as U: a label that comes and goes breaks some graphers' history.
    assert data["delivery_gmail:slow"] == ("U", "", "0")
    assert data["delivery_mallory:bob"] == ("U", "", "0")
    assert list(data) == [
        f"delivery_{r}:{t}"
        for r, t in [("gmail", "seed"), ("gmail", "slow"), ("mallory", "bob"), ("gmail", "bob")]
    ]


def test_could_not_look_is_unknown_and_outranks_critical() -> None:
    line, code = plugin_output(
        [
            Canary("gmail", "slow", Verdict.MISSING),
            Canary("gmail", "bob-imap-down", Verdict.CHECK_FAILED, failure="connect_failed"),
        ]
    )
    assert code == 3
    assert line.split(" | ")[0] == (
        "MAILCANARY UNKNOWN - 0/2 inbox; check_failed: gmail:bob-imap-down (connect_failed); "
        "missing: gmail:slow"
    )


def test_nothing_probed_or_undecided_is_unknown_never_ok() -> None:
    assert plugin_output([]) == ("MAILCANARY UNKNOWN - no canary was probed", 3)
    assert plugin_error("database: locked |\nx") == ("MAILCANARY UNKNOWN - database: locked  x", 3)
    line, code = plugin_output(
        [Canary("gmail", "seed", Verdict.INBOX, 1.0), Canary("gmail", "bob", None)]
    )
    assert code == 3
    assert line.startswith("MAILCANARY UNKNOWN - 1/2 inbox; undecided: gmail:bob | ")


@pytest.mark.parametrize("verdicts", list(itertools.combinations_with_replacement(Verdict, 2)))
def test_status_word_and_exit_code_follow_the_verdict_rules(verdicts) -> None:
    line, code = plugin_output([Canary("r", str(i), v) for i, v in enumerate(verdicts)])
    assert code == exit_code(list(verdicts))
    assert line.startswith(f"MAILCANARY {('OK', 'WARNING', 'CRITICAL', 'UNKNOWN')[code]} - ")


def test_a_long_outage_names_the_worst_few_and_counts_the_rest() -> None:
    batch = [Canary("r", f"m{i}", Verdict.MISSING) for i in range(MAX_NAMED + 2)]
    batch.append(Canary("r", "down", Verdict.CHECK_FAILED))
    text = plugin_output(batch)[0].split(" | ")[0]
    named = [f"r:m{i}" for i in range(MAX_NAMED - 1)]
    assert text == (
        f"MAILCANARY UNKNOWN - 0/{len(batch)} inbox; check_failed: r:down; "
        f"missing: {', '.join(named)}; 3 more"
    )


@pytest.mark.parametrize(
    ("label", "written"),
    [
        ("load1", "load1"),
        ("delivery_gmail:seed", "'delivery_gmail:seed'"),
        ("with space", "'with space'"),
        ("o'neil", "'o''neil'"),  # a quote is doubled inside quotes
        ("a=b", "a_b"),  # `=` may not appear in a label at all
        ("two|lines\nhere", "'two lines here'"),
    ],
)
def test_labels_are_quoted_and_escaped_per_the_guidelines(label: str, written: str) -> None:
    assert perf_label(label) == written


def test_odd_names_survive_a_perfdata_parser() -> None:
    line, _ = plugin_output(
        [Canary("it's", "a b", Verdict.INBOX, 1.0), Canary("x=y", "z", Verdict.INBOX, 2.0)]
    )
    assert perfdata(line) == {
        "delivery_it's:a b": ("1", "s", "0"),
        "delivery_x_y:z": ("2", "s", "0"),
    }


def test_canaries_from_records_take_the_failure_from_the_send_or_the_decision() -> None:
    t0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

    def record(n: int, to: str, decision: Decision | None, send: SendOutcome | None):
        planned = PlannedProbe(
            token=f"t{n}",
            route="gmail",
            sender="alice",
            recipient=to,
            slot=t0,
            planned_at=t0,
            deadline_at=t0 + timedelta(minutes=10),
            message_id=f"<{n}@x>",
        )
        state = "final" if decision else "sent"
        return ProbeRecord(id=n, planned=planned, state=state, send=send, decision=decision)

    rejected = Failure("rejected", Phase.RCPT_TO, False, "no such user", 550, "5.1.1")
    down = Failure("connect_failed", Phase.IMAP_CONNECT, True, "connection refused")
    refused = SendOutcome(phase=Phase.RCPT_TO, failure=rejected)
    sent = SendOutcome(phase=Phase.DONE, handoff_at=t0)
    records = [
        record(1, "bob", Decision(Verdict.INBOX, delivery_seconds=2.5), sent),
        record(2, "nobody", Decision(Verdict.SEND_FAILED), refused),
        record(3, "down", Decision(Verdict.CHECK_FAILED, failure=down), sent),
        record(4, "waiting", None, sent),
    ]
    assert canaries(records) == [
        Canary("gmail", "bob", Verdict.INBOX, 2.5),
        Canary("gmail", "nobody", Verdict.SEND_FAILED, failure="rejected"),
        Canary("gmail", "down", Verdict.CHECK_FAILED, failure="connect_failed"),
        Canary("gmail", "waiting", None),
    ]
