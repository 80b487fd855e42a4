"""Reports of several instances through real parts: probes recorded through the Store by two
instances, as their daemons record them; the rollup kept per instance by the triggers of
SQLite and of the harness's PostgreSQL; `mailcanary report --by-instance` and `--instance`
run as commands; and the migration that gave the rollup its instance, up from 0005 with
probes in the database and back down."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection

from monitor.adapters.store import Store, alembic_config
from monitor.core.models import Verdict
from tests.integration.test_report_support import (
    REFUSED,
    WEEK,
    mailcanary,
    record,
    report_config,
    report_store,  # noqa: F401 - the `store` fixture: a test on SQLite and on PostgreSQL
    rollup_matches_probes,
)

EU, US = "eu-1", "us-1"
GMAIL, OUTLOOK = "Gmail / Google Workspace", "Outlook.com / Microsoft 365"
WEEK_ARGS = ("--from", "2026-10-19", "--to", "2026-10-25")


async def fill_two_instances(store: Store, first: int = 0, later: timedelta = timedelta(0)) -> None:
    """Each slot is claimed by one instance. eu-1: 30 canaries to g, all in the inbox; 6 to
    o, one refused. us-1: 10 to g, 4 of them in spam; 1 to o, missing. The week before:
    4 of eu-1's to g. Probe ids from `first`, slots `later` than these."""
    step = (WEEK.end - WEEK.start) / 40
    at = [WEEK.start + later + i * step for i in range(40)]
    for i in range(30):
        await record(store, first + i, at[i], Verdict.INBOX, seconds=i + 1.0, instance=EU)
    for i in range(30, 40):
        spam = i >= 36
        verdict, seconds = (Verdict.SPAM, 40.0) if spam else (Verdict.INBOX, 10.0)
        dmarc = "fail" if spam else "pass"
        await record(store, first + i, at[i], verdict, seconds=seconds, dmarc=dmarc, instance=US)
    for i in range(5):
        await record(store, first + 40 + i, at[i], Verdict.INBOX, to="o", seconds=2.0, instance=EU)
    refused = at[5] + timedelta(minutes=1)
    await record(
        store, first + 45, refused, Verdict.SEND_FAILED, to="o", failure=REFUSED, instance=EU
    )
    await record(store, first + 46, at[39], Verdict.MISSING, to="o", instance=US)
    for i in range(4):
        earlier = WEEK.previous().start + later + timedelta(hours=10 * i)
        await record(store, first + 50 + i, earlier, Verdict.INBOX, seconds=5.0, instance=EU)


def report_json(config: Path, *args: str) -> dict[str, Any]:
    done = mailcanary(config, "report", *WEEK_ARGS, "--format", "json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def mailboxes(document: dict[str, Any]) -> dict[tuple[str, str | None], dict[str, Any]]:
    """(recipient, instance) → the summary of that mailbox entry."""
    return {
        (entry["recipient"], entry["instance"]): entry["summary"]
        for provider in document["providers"]
        for entry in provider["mailboxes"]
    }


def counts(summary: dict[str, Any]) -> dict[str, int]:
    return {verdict: n for verdict, n in summary["counts"].items() if n}


async def test_reports_count_and_split_what_each_instance_sent(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fill_two_instances(store)
    await rollup_matches_probes(store)
    async with store.engine.connect() as db:
        found = await db.execute(text("SELECT DISTINCT instance FROM probe_rollup"))
        assert sorted(found.scalars()) == [EU, US]
    # The triggers follow a change of instance too (no daemon does that; an import might).
    for moved in ("elsewhere", US):
        async with store.engine.begin() as db:
            changed = await db.execute(
                text(
                    "UPDATE probes SET instance = :i WHERE message_id = '<30.canary@example.org>'"
                ),
                {"i": moved},
            )
            assert changed.rowcount == 1
        await rollup_matches_probes(store)

    config = report_config(tmp_path, store.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("PW", "not-used")
    split = await asyncio.to_thread(report_json, config, "--by-instance")
    assert (split["by_instance"], split["instances"], split["instance_filter"]) == (
        True,
        [EU, US],
        [],
    )
    lines = mailboxes(split)
    # Outlook first: its inbox rate (5 of 7) is worse than Gmail's (36 of 40).
    assert list(lines) == [("o", EU), ("o", US), ("g", EU), ("g", US)]
    assert counts(lines[("g", EU)]) == {"inbox": 30}
    assert counts(lines[("g", US)]) == {"inbox": 6, "spam": 4}
    assert counts(lines[("o", EU)]) == {"inbox": 5, "send_failed": 1}
    assert counts(lines[("o", US)]) == {"missing": 1}
    assert lines[("g", US)]["dmarc_failed"] == {"spam": 4}
    assert (lines[("g", EU)]["delivery"]["max"], lines[("g", US)]["delivery"]["max"]) == (30, 40)
    assert lines[("g", EU)]["previous"]["canaries"] == 4
    assert lines[("g", US)]["previous"]["canaries"] == 0
    # Providers and the total are those of the whole fleet, split or not.
    providers = {p["provider"]: p["summary"] for p in split["providers"]}
    assert counts(providers[GMAIL]) == {"inbox": 36, "spam": 4}
    assert split["total"]["canaries"] == 47 and len(split["failures"]) == 1
    # The trend and the Authentication-Results sample read the same on both databases.
    assert [w["canaries"] for w in split["weeks"]][-2:] == [
        split["total"]["previous"]["canaries"],
        47,
    ]
    assert split["authentication"]["spam_causes"][GMAIL]["check"] == "dmarc"

    only = await asyncio.to_thread(report_json, config, "--instance", US)
    assert (only["instance_filter"], only["instances"], only["by_instance"]) == ([US], [US], False)
    assert {key: counts(s) for key, s in mailboxes(only).items()} == {
        ("g", None): {"inbox": 6, "spam": 4},
        ("o", None): {"missing": 1},
    }
    assert only["total"]["canaries"] == 11 and only["failures"] == []  # the refusal was eu-1's
    assert only["total"]["previous"]["canaries"] == 0

    unknown = await asyncio.to_thread(
        mailcanary, config, "report", *WEEK_ARGS, "--instance", f"{EU},nowhere"
    )
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.strip().splitlines() == [
        "mailcanary: --instance: no canaries of nowhere in 2026-10-19 – 2026-10-25 or the "
        f"period before; instances with canaries then: {EU}, {US}"
    ]


# -- the migration ----------------------------------------------------------------------------


async def migrate(store: Store, direction: str, revision: str) -> None:
    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)

    async with store.engine.begin() as connection:
        await connection.run_sync(run)


async def schema(store: Store) -> tuple[set[tuple[Any, ...]], str]:
    """Every table, column, index, constraint, trigger and function, as the database has
    them (so two schemas compare to the letter), and the Alembic revision."""
    if store.engine.dialect.name == "sqlite":
        queries = ["SELECT type, name, tbl_name, sql FROM sqlite_master"]
    else:
        queries = [
            "SELECT table_name, column_name, data_type, is_nullable, ordinal_position "
            "FROM information_schema.columns WHERE table_schema = 'public'",
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE connamespace = 'public'::regnamespace",
            "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal",
            "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'public'::regnamespace",
        ]
    async with store.engine.connect() as db:
        found = {tuple(row) for query in queries for row in await db.execute(text(query))}
        version = (await db.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    return found, str(version)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_migration_counts_existing_probes_per_instance_and_goes_back(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/mc.db"
    else:
        url = str(request.getfixturevalue("postgres").create_database())
    store = await Store.open(url)
    try:
        await migrate(store, "upgrade", "0005")
        await fill_two_instances(store)
        await rollup_matches_probes(store, by_instance=False)
        before, revision = await schema(store)
        assert revision == "0005"

        await migrate(store, "upgrade", "0006")
        assert (await schema(store))[1] == "0006"
        await rollup_matches_probes(store)  # counted again, per instance
        await fill_two_instances(store, 100, timedelta(minutes=1))  # the new triggers at work
        await rollup_matches_probes(store)

        await migrate(store, "downgrade", "0005")
        assert await schema(store) == (before, "0005")
        await rollup_matches_probes(store, by_instance=False)

        await migrate(store, "upgrade", "head")
        await rollup_matches_probes(store)
    finally:
        await store.close()
