"""The resolved [reports] section (what the report service reads); see report_file.py for the
file's own shape and its checks."""

from datetime import time

from pydantic import BaseModel, ConfigDict

_RESOLVED = ConfigDict(frozen=True, extra="forbid")

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ReportSettings(BaseModel):
    model_config = _RESOLVED

    weekly: str = "mon 08:00"  # as written; `weekday` and `at` are what it means
    weekday: int = 0  # Monday
    at: time = time(8, 0)
    timezone: str = "UTC"  # an IANA name: days, hours and the weekly moment are local to it
    to: list[str] = []  # nobody: no scheduled report (`mailcanary report` still works)
    account: str | None = None  # an account with smtp; it sends the report

    @property
    def scheduled(self) -> bool:
        return bool(self.to) and self.account is not None
