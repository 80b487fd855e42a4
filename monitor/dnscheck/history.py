"""What changed in a sending domain's DNS posture between two runs of the checks: pure.

A finding is known by (check, target); a change is a status that moved (ok → warn, a
blocklist listing that appeared or went away), a finding that is new, or one no longer
found. Details are not compared: a record's text may change without changing its verdict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from monitor.dnscheck.policy import Finding


@dataclass(frozen=True, slots=True)
class Change:
    check: str
    target: str
    was: str | None  # the earlier status; None: not checked then
    now: str | None  # None: no longer checked (a selector or an address went away)

    @property
    def text(self) -> str:
        return f"{self.check} {self.target}: {self.was or 'not checked'} → {self.now or 'gone'}"


def changes(before: Iterable[Finding], now: Iterable[Finding]) -> tuple[Change, ...]:
    """Status changes from `before` to `now`, in the order of `now` (then those gone)."""
    earlier = {(f.check, f.target): str(f.status) for f in before}
    later = {(f.check, f.target): str(f.status) for f in now}
    found = [
        Change(check, target, earlier.get((check, target)), status)
        for (check, target), status in later.items()
        if earlier.get((check, target)) != status
    ]
    found += [
        Change(check, target, status, None)
        for (check, target), status in earlier.items()
        if (check, target) not in later
    ]
    return tuple(found)


@dataclass(frozen=True)
class DnsPosture:
    """What `mailcanary dns` found for one sending account, and what changed since an
    earlier run (`compared_with`; None when there was none to compare with)."""

    account: str
    domain: str
    findings: tuple[Finding, ...]
    compared_with: datetime | None = None
    changes: tuple[Change, ...] = ()
