"""`mailcanary probe`, `history` and `providers`: canaries now, the record, the presets."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from datetime import timedelta

from rich.live import Live
from rich.table import Table

from monitor.cli import tables as render
from monitor.cli.common import err
from monitor.cli.console import out
from monitor.config.load import Config
from monitor.config.schema import Route
from monitor.core.models import PlannedProbe, ProbeRecord, utcnow
from monitor.probe import verdict
from monitor.probe.oneshot import probe_once


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


async def run_probe(
    cfg: Config,
    routes: list[Route],
    *,
    deadline: float | None,
    as_json: bool = False,
    quiet: bool = False,
) -> tuple[int, list[ProbeRecord]]:
    """Probe, showing progress (a live table on a terminal, or one JSON line per canary as
    it is judged); the Nagios-style exit code of the lot and the records."""
    wait = deadline or cfg.monitor.deadline
    board = LiveBoard(f"mailcanary probe — deadline {wait:g}s per canary", routes)

    def progress(planned: PlannedProbe, stage: str, record: ProbeRecord | None) -> None:
        board.update(planned, stage, record)
        if as_json and stage == "final" and record is not None:
            # Each line as its canary is judged: a slow mailbox holds up only its own.
            sys.stdout.write(render.json_line(record) + "\n")
            sys.stdout.flush()

    live = out.is_terminal and not as_json and not quiet
    view = (
        Live(board.table(), console=out, refresh_per_second=8, transient=True, redirect_stderr=True)
        if live
        else nullcontext()
    )
    with view as shown:
        board.live = shown if live else None
        records = await probe_once(cfg, routes, deadline=wait, progress=progress)
    board.live = None
    if not as_json and not quiet:
        out.print(board.table())
    return verdict.exit_code([r.decision.verdict for r in records if r.decision]), records


async def show_history(
    cfg: Config, *, since: float | None, route: str | None, as_json: bool, limit: int
) -> None:
    from monitor.adapters.store import Store, missing_file

    missing = missing_file(cfg.monitor.database)
    if missing is not None:
        # Opening it would create an empty database and say "0 probes": say where we looked.
        err.print(f"mailcanary: no probes recorded yet: {missing} does not exist", soft_wrap=True)
        return
    store = await Store.open(cfg.monitor.database)
    try:
        records = []
        if await store.has_table("probes"):
            start = utcnow() - timedelta(seconds=since) if since is not None else None
            records = await store.history(since=start, route=route, limit=limit)
    finally:
        await store.close()
    if not records:
        err.print(f"mailcanary: no probes in {_where(cfg)}", soft_wrap=True)
    if as_json:
        for record in records:
            sys.stdout.write(render.json_line(record) + "\n")
        return
    rows = [(r.planned, r.state, r) for r in records]
    out.print(render.probe_table(rows, title=f"{len(records)} probes, newest first"))


def _where(cfg: Config) -> str:
    from monitor.config.file_models import hide_database_password

    return hide_database_password(cfg.monitor.database)


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
