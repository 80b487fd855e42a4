"""The one-shot commands behind the CLI: probe now, show history, list presets."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta

from rich.console import Console
from rich.live import Live
from rich.table import Table

from monitor.adapters.store import Store
from monitor.cli import tables as render
from monitor.config.load import Config
from monitor.config.schema import Route
from monitor.core.models import PlannedProbe, ProbeRecord, utcnow
from monitor.daemon.main import READY_TIMEOUT, opened
from monitor.probe import verdict

# A one-shot check gives up on a mailbox after this many failed IMAP sessions in a row
# (each ends at the first step with no answer within imap_timeout; 1 s and 2 s between).
IMAP_ATTEMPTS = 3

out = Console()
if not out.is_terminal:
    out = Console(width=200)  # piped to a file or a pager: do not wrap at 80 columns


class LiveBoard:
    """Rows by token, redrawn on every stage change when stdout is a terminal."""

    def __init__(self, title: str, routes: list[Route]):
        self.rows: dict[str, tuple[PlannedProbe, str, ProbeRecord | None]] = {}
        self.title = title
        # Config order, so rows stay put while verdicts arrive in any order.
        self.order = {(r.name, to): i for i, r in enumerate(routes) for to in r.recipients}
        self.live: Live | None = None

    def update(self, planned: PlannedProbe, stage: str, record: ProbeRecord | None) -> None:
        previous = self.rows.get(planned.token)
        if record is None and previous is not None:
            record = previous[2]
        self.rows[planned.token] = (planned, stage, record)
        if self.live is not None:
            self.live.update(self.table())

    def table(self) -> Table:
        rows = sorted(
            self.rows.values(),
            key=lambda row: self.order.get((row[0].route, row[0].recipient), len(self.order)),
        )
        return render.probe_table(rows, title=self.title)


async def probe_once(
    cfg: Config,
    routes: list[Route],
    *,
    deadline: float | None,
    as_json: bool,
    collect: list[ProbeRecord] | None = None,
    quiet: bool = False,
) -> int:
    """One canary per (route, recipient) now; the Nagios-style exit code of the lot."""
    wait = deadline or cfg.monitor.deadline
    board = LiveBoard(f"mailcanary probe — deadline {wait:g}s per canary", routes)
    live = out.is_terminal and not as_json and not quiet

    def progress(planned: PlannedProbe, stage: str, record: ProbeRecord | None) -> None:
        board.update(planned, stage, record)
        if as_json and stage == "final" and record is not None:
            # Each line as its canary is judged: a slow mailbox holds up only its own.
            sys.stdout.write(render.json_line(record) + "\n")
            sys.stdout.flush()

    async with opened(cfg, progress=progress, give_up_after=IMAP_ATTEMPTS) as runner:
        await runner.start_watchers({to for r in routes for to in r.recipients})
        await runner.wait_watchers_ready(READY_TIMEOUT)
        jobs = [runner.probe(r, to, deadline=wait) for r in routes for to in r.recipients]
        if live:
            with Live(
                board.table(),
                console=out,
                refresh_per_second=8,
                transient=True,
                redirect_stderr=True,
            ) as view:
                board.live = view
                results = await asyncio.gather(*jobs)
            board.live = None
        else:
            results = await asyncio.gather(*jobs)
    records = [r for r in results if r is not None]
    if collect is not None:
        collect.extend(records)
    if not as_json and not quiet:
        out.print(board.table())
    return verdict.exit_code([r.decision.verdict for r in records if r.decision])


async def show_history(
    cfg: Config, *, since: float | None, route: str | None, as_json: bool, limit: int
) -> None:
    store = await Store.open(cfg.monitor.database)
    try:
        await store.upgrade()
        start = utcnow() - timedelta(seconds=since) if since is not None else None
        records = await store.history(since=start, route=route, limit=limit)
    finally:
        await store.close()
    if as_json:
        for record in records:
            sys.stdout.write(render.json_line(record) + "\n")
        return
    rows = [(r.planned, r.state, r) for r in records]
    out.print(render.probe_table(rows, title=f"{len(records)} probes, newest first"))


def show_providers(*, as_json: bool) -> None:
    from monitor.config.presets import PRESET_COLUMNS, PRESETS, preset_rows

    if as_json:
        data = {name: preset.model_dump(mode="json") for name, preset in PRESETS.items()}
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    table = Table(title="Provider presets (explicit keys in the config win)", header_style="bold")
    for column in PRESET_COLUMNS:
        table.add_column(column, overflow="fold")
    for row in preset_rows():
        table.add_row(*(row[column] for column in PRESET_COLUMNS))
    out.print(table)
