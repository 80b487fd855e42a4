"""The [reports] table as written in the file, and its resolution against the accounts.

[reports]
weekly = "mon 08:00"          # when the weekly report of the last full week goes out
timezone = "Europe/Athens"    # days, hours and `weekly` are local to it (default UTC)
to = ["ops@example.org"]      # who gets it; none: no scheduled report
account = "ops-sender"        # the account (with smtp) that sends it
"""

import re
from collections.abc import Mapping
from datetime import time
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel

from monitor.config.file_models import _FILE, _email
from monitor.config.problems import check_table, excerpt, problem, toml_type
from monitor.config.report_settings import WEEKDAYS, ReportSettings
from monitor.config.schema import Account

_WEEKLY = re.compile(r"\s*([a-z]+)\s+(\d{1,2}):(\d{2})\s*")
_DAY_NAMES = {name: i for i, name in enumerate(WEEKDAYS)}
_DAY_NAMES |= {
    full: i
    for i, full in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    )
}


def parse_weekly(value: str) -> tuple[int, time]:
    """ "mon 08:00" → (0, 08:00); raises ValueError with the line to show."""
    found = _WEEKLY.fullmatch(value.lower())
    if found and found[1] in _DAY_NAMES and int(found[2]) < 24 and int(found[3]) < 60:
        return _DAY_NAMES[found[1]], time(int(found[2]), int(found[3]))
    raise ValueError('must be a weekday and a 24-hour time like "mon 08:00"')


def _weekly(value: str) -> str:
    try:
        parse_weekly(value)
    except ValueError as exc:
        raise problem(str(exc), value) from None
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    # OSError: a name of a directory of the zone database ("Europe") is read as a file.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise problem(
            'unknown time zone; use an IANA name like "Europe/Athens" or "UTC"', value
        ) from None
    return value


class ReportsFile(BaseModel):
    model_config = _FILE

    weekly: Annotated[str, AfterValidator(_weekly)] = "mon 08:00"
    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"
    to: list[Annotated[str, AfterValidator(_email)]] = []
    account: str | None = None


def resolve_reports(
    raw: object, accounts: Mapping[str, Account | None]
) -> tuple[ReportSettings, list[str]]:
    """The resolved [reports] and the problems found (empty when it is usable)."""
    if not isinstance(raw, dict):
        return ReportSettings(), [f"reports: must be a table ([reports]), got {toml_type(raw)}"]
    checked = check_table(ReportsFile, raw, "reports", {})
    problems = list(checked.problems)
    found = checked.model or ReportsFile()
    if found.to and found.account is None and "account" not in checked.dropped:
        problems.append("reports.account: required to send the report to reports.to")
    if found.account is not None:
        if found.account not in accounts:
            problems.append(f"reports.account: unknown account {excerpt(found.account)}")
        elif (account := accounts[found.account]) is not None and account.smtp is None:
            problems.append(f"reports.account: account {excerpt(found.account)} has no smtp")
        if not found.to and "to" not in checked.dropped:
            problems.append("reports.to: required with reports.account (who gets the report?)")
    weekday, at = parse_weekly(found.weekly)
    settings = ReportSettings(
        weekly=found.weekly,
        weekday=weekday,
        at=at,
        timezone=found.timezone,
        to=found.to,
        account=found.account,
    )
    return settings, problems
