"""The report in one line: a state (green / amber / red, grey when nothing was measured) and
why, e.g. "Gmail: 7.9% to spam (was 0.4%) — DMARC fails on 40% of those".

The state is the worst of two judgements: the worst provider's share not in the inbox
(RED_SHARE, AMBER_SHARE) and the most severe thing to fix (high → red, medium → amber).
The reason names the worst provider's largest trouble and how it compares with the previous
period; when all is well, the inbox rate and delivery time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from monitor.core.models import Verdict
from monitor.reports.auth import SpamCause
from monitor.reports.model import Summary, Tally
from monitor.templates.filters import percent, plural, seconds

RED_SHARE = 0.10
AMBER_SHARE = 0.02
STATES = ("green", "amber", "red")
TROUBLES = (  # what a canary not in the inbox became, as the headline says it
    ((Verdict.SPAM,), "to spam"),
    ((Verdict.MISSING, Verdict.LATE), "did not arrive in time"),
    ((Verdict.SEND_FAILED,), "could not be sent"),
    ((Verdict.CHECK_FAILED,), "could not be checked"),
)


@dataclass(frozen=True)
class Headline:
    state: str  # green | amber | red | grey
    text: str


def headline(
    total: Summary,
    providers: Sequence[tuple[str, Summary]],
    severities: Sequence[str],
    causes: Mapping[str, SpamCause],
) -> Headline:
    """`providers` worst first; `severities` of the things to fix."""
    if total.tally.total == 0:
        return Headline("grey", "no canaries in this period")
    worst_name, worst = next((p for p in providers if p[1].tally.total), ("", total))
    share = 1.0 - (worst.tally.rate(Verdict.INBOX) or 0.0)
    state = 2 if share >= RED_SHARE else 1 if share >= AMBER_SHARE else 0
    if "high" in severities:
        state = 2
    elif "medium" in severities:
        state = max(state, 1)
    if share < AMBER_SHARE:
        p95 = seconds(total.delivery.percentile(0.95))
        text = (
            f"{percent(total.tally.rate(Verdict.INBOX))} of {plural(total.tally.total, 'canary')} "
            f"reached the inbox, p95 delivery {p95}"
        )
        if state:
            text += f"; but see what to fix ({severities[0]})"
        return Headline(STATES[state], text)
    verdicts, words = max(TROUBLES, key=lambda t: worst.tally.count(*t[0]))
    text = f"{worst_name}: {_share(worst.tally, verdicts)} {words}"
    before = worst.previous.rate(*verdicts)
    if before is not None:
        text += f" (was {percent(before)})"
    cause = causes.get(worst_name)
    if verdicts == (Verdict.SPAM,) and cause is not None:
        text += f" — {cause.text}"
    return Headline(STATES[state], text)


def _share(tally: Tally, verdicts: tuple[Verdict, ...]) -> str:
    return percent(tally.rate(*verdicts))
