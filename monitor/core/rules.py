"""One rule engine for the tables that read a failure: which kind an SMTP reply means
(`core.failures`) and what to do about a failure (`core.catalogue` and its tables).

A rule lists conditions (failure kind, phase, basic code, enhanced code, a pattern on the
server's text) and what it says when every condition it lists holds; a condition left None
does not matter. Enhanced codes are written "x.7.26" (any class: 4.7.26 and 5.7.26) or in full
("5.7.139").

Two ways of choosing among the rules that hold, because the two tables answer differently:
- `first_match`: the table's order is its precedence. Classifying a reply is a short decision
  list in which a broad early row must beat a narrower later one (any refusal during AUTH is
  `auth_failed`, whatever its enhanced code says).
- `most_specific`: the advice tables are long, spread over several modules and written by
  provider; there the most specific rule wins whatever its position (a text pattern outweighs
  an enhanced code, which outweighs a basic code, then the phase, then the kind), and equal
  weights go to the rule listed first.

Leaf module: it imports only the models, so the tables can import it and be imported back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from monitor.core.models import Advice, Phase

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Rule(Generic[T]):
    """One row of a rule table: what it `says` when all its given conditions hold."""

    says: T
    kinds: frozenset[str] | None = None
    phases: frozenset[Phase] | None = None
    codes: frozenset[int] | None = None
    enhanced: frozenset[str] | None = None
    text: re.Pattern[str] | None = None

    @property
    def weight(self) -> int:
        given = (self.kinds, self.phases, self.codes, self.enhanced, self.text)
        return sum(1 << i for i, condition in enumerate(given) if condition is not None)

    def matches(
        self,
        phase: Phase,
        code: int | None,
        enhanced: str | None,
        text: str = "",
        kind: str | None = None,
    ) -> bool:
        if self.kinds is not None and kind not in self.kinds:
            return False
        if self.phases is not None and phase not in self.phases:
            return False
        if self.codes is not None and code not in self.codes:
            return False
        if self.enhanced is not None and not _enhanced_in(enhanced, self.enhanced):
            return False
        return self.text is None or self.text.search(text) is not None


def _enhanced_in(enhanced: str | None, wanted: frozenset[str]) -> bool:
    if enhanced is None:
        return False
    return enhanced in wanted or "x." + enhanced.split(".", 1)[1] in wanted


def first_match(rules: Iterable[Rule[T]], **facts: Any) -> Rule[T] | None:
    """The first rule, in table order, whose conditions hold for `facts` (see Rule.matches)."""
    return next((rule for rule in rules if rule.matches(**facts)), None)


def most_specific(rules: Iterable[Rule[T]], **facts: Any) -> Rule[T] | None:
    """The heaviest rule whose conditions hold; of equal weights, the one listed first."""
    best: Rule[T] | None = None
    for candidate in rules:
        if candidate.matches(**facts) and (best is None or candidate.weight > best.weight):
            best = candidate
    return best


def _group(value: Any) -> frozenset[Any] | None:
    if value is None:
        return None
    # A Phase is a str too: one value, not an iterable of characters.
    return frozenset({value}) if isinstance(value, str | int) else frozenset(value)


def rule(
    says: T,
    *,
    kind: str | Iterable[str] | None = None,
    phase: Phase | Iterable[Phase] | None = None,
    code: int | Iterable[int] | None = None,
    enhanced: str | Iterable[str] | None = None,
    text: str | None = None,
) -> Rule[T]:
    """A Rule from loose arguments: one value or several for each condition; `text` is a
    case-insensitive regular expression searched in the server's text."""
    return Rule(
        says,
        kinds=_group(kind),
        phases=_group(phase),
        codes=_group(code),
        enhanced=_group(enhanced),
        text=re.compile(text, re.IGNORECASE) if text else None,
    )


# The advice tables' rows: what happened and what to do about it.
Entry = Rule[Advice]


def entry(explanation: str, remedy: str, **conditions: Any) -> Entry:
    """An advice row; `conditions` as for `rule`."""
    return rule(Advice(explanation, remedy), **conditions)
