"""`mailcanary report`: choose the period, build the report, write it in one format.

Safe beside a running daemon: reads the database only, never migrates (the one write is
the DNS run it adds to state_dir/dns-posture.json, skipped when not writable). Periods are
local to `[reports] timezone` (default UTC): the last full week (Monday to Sunday) by
default, `--since 7d` for the last seven days up to now, `--from/--to` for whole days (both
included).
`--instance NAME` (repeated, or a comma list) counts only what those instances sent;
`--by-instance` splits each mailbox's line per instance. `--no-dns` leaves out the sending
accounts' DNS and blocklist checks (they need the network; see reports.query.dns_posture).
"""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from monitor.adapters.store import Store, missing_file
from monitor.cli.common import err
from monitor.config.load import Config
from monitor.core.models import utcnow
from monitor.reports.charts import render_charts, use_cache_dir
from monitor.reports.export import FORMATS, render_csv, render_json
from monitor.reports.html import render_html
from monitor.reports.model import Period, days_period, last_full_week, recent
from monitor.reports.query import UnknownInstance, report_for
from monitor.reports.text import render_text


class ReportArgsError(Exception):
    """The command line asks for something impossible; the message is the line to show."""


class ReportUnavailable(Exception):
    """There is nothing to report from (no database, an old schema)."""


def _date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ReportArgsError(f"{option}: expected a date like 2026-11-02, got {value!r}") from None


def choose_period(
    now: datetime,
    timezone: str,
    *,
    since: float | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
) -> Period:
    if since is not None and (date_from or date_to):
        raise ReportArgsError("--since and --from/--to cannot be combined")
    if since is not None:
        return recent(now, since, timezone)
    if date_to and not date_from:
        raise ReportArgsError("--to needs --from")
    if date_from:
        first = _date(date_from, "--from")
        last = _date(date_to, "--to") if date_to else now.astimezone(ZoneInfo(timezone)).date()
        if last < first:
            raise ReportArgsError(f"--to {last} is before --from {first}")
        return days_period(first, last, timezone)
    return last_full_week(now, timezone)


def instance_names(values: Iterable[str]) -> tuple[str, ...]:
    """`--instance a,b --instance c`: each name once, in the order given."""
    names = [name.strip() for value in values for name in value.split(",")]
    if "" in names:
        raise ReportArgsError("--instance: expected instance names like eu-1 or a,b")
    return tuple(dict.fromkeys(names))


async def run_report(
    cfg: Config,
    *,
    since: float | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    fmt: str = "text",
    output: Path | None = None,
    out: TextIO | None = None,
    instances: Iterable[str] = (),
    by_instance: bool = False,
    check_dns: bool = True,
) -> int:
    if fmt not in FORMATS:
        raise ReportArgsError(f"--format: one of {', '.join(FORMATS)}, got {fmt!r}")
    only = instance_names(instances)
    now = utcnow()
    period = choose_period(
        now, cfg.reports.timezone, since=since, date_from=date_from, date_to=date_to
    )
    _require_database(cfg.monitor.database)
    store = await Store.open(cfg.monitor.database)
    try:
        # The rollup keyed by instance arrived with migration 0006.
        if not await store.has_table("probe_rollup", "instance"):
            raise ReportUnavailable(
                "the database predates this version's reports: run `mailcanary db upgrade` "
                "or restart the daemon"
            )
        try:
            report = await report_for(
                cfg,
                store,
                period,
                now,
                instances=only,
                by_instance=by_instance,
                check_dns=check_dns,
            )
        except UnknownInstance as exc:
            raise ReportArgsError(f"--instance: {exc}") from None
    finally:
        await store.close()
    if report.total.tally.total == 0:
        # An empty default week right after set-up reads as "broken": say what was read.
        chosen = "the last full week" if since is None and not date_from else "the period asked"
        err.print(
            f"mailcanary: no canaries in {report.period.label} ({chosen}, {cfg.reports.timezone}); "
            "choose another period with --since 1d or --from 2026-11-02 --to 2026-11-08",
            highlight=False,
            soft_wrap=True,
        )
    if fmt == "html":
        use_cache_dir(cfg.monitor.state_dir)
        charts = await render_charts(report)
        images = {
            name: "data:image/png;base64," + base64.b64encode(png).decode()
            for name, png in charts.items()
        }
        document = render_html(report, images)
    else:
        document = {"text": render_text, "json": render_json, "csv": render_csv}[fmt](report)
    if output is not None:
        await asyncio.to_thread(output.write_text, document, encoding="utf-8")
    else:
        (out or sys.stdout).write(document)
    return 0


def _require_database(url: str) -> None:
    # Opening a missing SQLite file would create it: a report must not leave one behind.
    missing = missing_file(url)
    if missing is not None:
        raise ReportUnavailable(f"no probes recorded yet: {missing} does not exist")
