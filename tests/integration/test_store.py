"""The store against real databases: a SQLite file, and a fresh database per test on the
harness's private PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, inspect, text
from sqlalchemy.exc import IntegrityError, StatementError

from monitor.adapters.migrations import migrations_head
from monitor.adapters.store import (
    ProbeStateError,
    SlotTaken,
    Store,
    alembic_config,
    async_url,
    migrations_dir,
)
from monitor.adapters.tables import Base
from monitor.core.models import (
    ArrivalSource,
    Decision,
    Failure,
    Phase,
    PlannedProbe,
    Role,
    SendOutcome,
    Sighting,
    SmtpReply,
    Verdict,
    utcnow,
)
from monitor.probe import verdict

# Non-UTC offsets on the way in prove the store normalises instead of storing wall time.
PARIS = timezone(timedelta(hours=2))
KOLKATA = timezone(timedelta(hours=5, minutes=30))
T0 = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=PARIS)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/var/mailcanary.db"
    # Only PostgreSQL cases start the server; each test gets an empty database of its own.
    return str(request.getfixturevalue("postgres").create_database())


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = await Store.open(database_url)
    await store.upgrade()
    yield store
    await store.close()


def planned(n: int, *, route: str = "gmail", recipient: str = "seed", **changes) -> PlannedProbe:
    slot = T0 + timedelta(minutes=5 * n)
    probe = PlannedProbe(
        token=f"abcdefghij234567abcd.{1774740615 + n}.mac{n}",
        route=route,
        sender="sender-account",
        recipient=recipient,
        slot=slot,
        planned_at=slot + timedelta(seconds=3, microseconds=7),
        deadline_at=slot + timedelta(minutes=10),
        message_id=f"<{n}.canary@mailcanary.test>",
        instance="eu-1",
    )
    return replace(probe, **changes)


def sent_ok(at: datetime) -> SendOutcome:
    return SendOutcome(
        phase=Phase.DONE,
        replies=(
            SmtpReply(Phase.GREETING, 220, None, "mx.example ESMTP"),
            SmtpReply(Phase.AUTH, 235, "2.7.0", "Authentication successful"),
            SmtpReply(Phase.RCPT_TO, 250, "2.1.5", "Ok — déjà vu"),
            SmtpReply(Phase.DATA, 250, "2.0.0", "Ok: queued as 4XyZ1"),
        ),
        queue_id="4XyZ1",
        tls_version="TLSv1.3",
        handoff_at=at,
        handoff_monotonic=12345.678,
    )


def seen(probe: PlannedProbe, role: Role = Role.SPAM) -> Sighting:
    return Sighting(
        token=probe.token,
        folder="Спам" if role is Role.SPAM else "INBOX",
        role=role,
        uid=4_294_967_295,  # the largest IMAP UID: must survive PostgreSQL too
        uidvalidity=3_000_000_001,
        detected_at=probe.planned_at.astimezone(KOLKATA) + timedelta(seconds=41, microseconds=3),
        internal_date=probe.planned_at.replace(microsecond=0) + timedelta(seconds=39),
        received_at=probe.planned_at.replace(microsecond=0) + timedelta(seconds=38),
        message_id=probe.message_id,
    )


def assert_utc(*values: datetime | None) -> None:
    for value in values:
        assert value is None or value.tzinfo is UTC, value


async def test_migration_creates_the_schema_once_and_matches_the_models(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        async with store.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
        assert "probes" not in tables  # open() alone must not migrate

        await store.upgrade()
        probe_id = await store.plan(planned(1))
        await store.upgrade()  # already at head: nothing may change or fail

        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        # upgrade() skips Alembic when the database is at the head it reads from the files.
        assert migrations_head(migrations_dir() / "versions") == head
        async with store.engine.connect() as connection:
            version = await connection.execute(text("SELECT version_num FROM alembic_version"))
            assert version.scalars().all() == [head] == ["0009"]
            diff = await connection.run_sync(_diff, Base.metadata)
            assert diff == [], diff
            # The comparison must be able to see a difference, or the check above proves nothing.
            drifted = MetaData(naming_convention=Base.metadata.naming_convention)
            for table in Base.metadata.tables.values():
                table.to_metadata(drifted)
            drifted.tables["probes"].append_column(Column("extra", Integer))
            assert [d[0] for d in await connection.run_sync(_diff, drifted)] == ["add_column"]
        record = await store.by_token(planned(1).token)
        assert record is not None and record.id == probe_id

        # A database one migration behind is brought to head, not taken for current.
        async with store.engine.begin() as connection:
            await connection.run_sync(_alembic, "downgrade", "0007")
        await store.upgrade()
        async with store.engine.connect() as connection:
            version = await connection.execute(text("SELECT version_num FROM alembic_version"))
            assert version.scalars().all() == [head]
    finally:
        await store.close()


def _alembic(connection, direction: str, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    getattr(command, direction)(config, revision)


def _diff(connection, metadata: MetaData) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, metadata)


@pytest.mark.parametrize(
    ("written", "used"),
    [
        ("sqlite:///var/mailcanary.db", "sqlite+aiosqlite:///var/mailcanary.db"),
        ("sqlite:////srv/mc.db", "sqlite+aiosqlite:////srv/mc.db"),
        ("postgresql://mc:pw@db:5433/mc", "postgresql+asyncpg://mc:pw@db:5433/mc"),
        ("postgres://mc@db/mc", "postgresql+asyncpg://mc@db/mc"),
    ],
)
def test_async_url_picks_the_async_driver(written: str, used: str) -> None:
    assert async_url(written) == used


def test_unsupported_database_does_not_echo_the_password() -> None:
    with pytest.raises(ValueError, match="mysql") as error:
        async_url("mysql://mc:hunter2@db/mc")
    assert "hunter2" not in str(error.value)


async def test_sqlite_relative_path_and_pragmas_on_every_connection(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = await Store.open("sqlite:///var/mailcanary.db")
    await first.upgrade()
    await first.close()
    assert (tmp_path / "var" / "mailcanary.db").is_file()

    second = await Store.open("sqlite:///var/mailcanary.db")
    try:
        async with second.engine.connect() as connection:
            pragmas = {
                name: (await connection.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
            }
        assert pragmas == {
            "journal_mode": "wal",
            "foreign_keys": 1,
            "synchronous": 1,  # NORMAL
            "busy_timeout": 5000,
        }
    finally:
        await second.close()


async def test_lifecycle_round_trips_every_field(store: Store) -> None:
    probe = planned(1)
    probe_id = await store.plan(probe)

    record = await store.by_token(probe.token)
    assert record is not None
    assert (record.id, record.planned, record.state) == (probe_id, probe, "planned")
    assert (record.send, record.sighting, record.decision, record.finished_at) == (None,) * 4
    assert_utc(record.planned.slot, record.planned.planned_at, record.planned.deadline_at)

    await store.mark_sending(probe_id)
    assert (await store.by_token(probe.token)).state == "sending"

    outcome = sent_ok(probe.planned_at.astimezone(KOLKATA) + timedelta(seconds=2))
    await store.record_send(probe_id, outcome)
    record = await store.by_token(probe.token)
    assert record.state == "sent"
    # The monotonic clock is meaningless in another process and is not kept.
    assert record.send == replace(outcome, handoff_monotonic=None)
    assert_utc(record.send.handoff_at)

    sighting = seen(probe)
    decision = Decision(
        verdict=Verdict.SPAM,
        folder=sighting.folder,
        role=Role.SPAM,
        arrived_at=sighting.received_at,
        arrival_source=ArrivalSource.RECEIVED,
        delivery_seconds=35.993,
    )
    before = utcnow()
    await store.finish(probe_id, decision, sighting)
    after = utcnow()

    record = await store.by_token(probe.token)
    assert record.state == "final"
    assert (record.planned, record.decision, record.sighting) == (probe, decision, sighting)
    assert record.send == replace(outcome, handoff_monotonic=None)
    assert before <= record.finished_at <= after
    assert_utc(record.finished_at, record.decision.arrived_at, *_times(record.sighting))

    with pytest.raises(ProbeStateError):
        await store.finish(probe_id, replace(decision, verdict=Verdict.INBOX))
    with pytest.raises(ProbeStateError):
        await store.mark_sending(probe_id)
    with pytest.raises(ProbeStateError):
        await store.mark_sending(probe_id + 1000)
    assert (await store.by_token(probe.token)).decision == decision
    assert await store.by_token("no-such-token") is None


def _times(sighting: Sighting) -> tuple[datetime | None, ...]:
    return (sighting.detected_at, sighting.internal_date, sighting.received_at)


async def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(StatementError, match="timezone-aware"):
        await store.plan(planned(1, slot=datetime(2026, 1, 1, 12, 0)))
    assert await store.history() == []


async def test_failures_round_trip_to_send_and_decision(store: Store) -> None:
    rejected = Failure("rejected", Phase.RCPT_TO, False, "no such user", 550, "5.1.1")
    refused = SendOutcome(
        phase=Phase.RCPT_TO,
        replies=(SmtpReply(Phase.RCPT_TO, 550, "5.1.1", "5.1.1 no such user"),),
        failure=rejected,
        tls_version="TLSv1.2",
    )
    first = await store.plan(planned(1))
    await store.mark_sending(first)
    await store.record_send(first, refused)
    assert (await store.by_token(planned(1).token)).state == "sending"
    await store.finish(first, Decision(Verdict.SEND_FAILED, failure=rejected))

    unreachable = Failure("connect_failed", Phase.IMAP_CONNECT, True, "connection refused")
    second = await store.plan(planned(2), sending=True)  # as the runner writes it
    assert (await store.by_token(planned(2).token)).state == "sending"
    await store.record_send(second, sent_ok(planned(2).planned_at))
    await store.finish(second, Decision(Verdict.CHECK_FAILED, failure=unreachable))

    send_failed = await store.by_token(planned(1).token)
    assert send_failed.send == refused
    assert send_failed.decision == Decision(Verdict.SEND_FAILED, failure=rejected)
    check_failed = await store.by_token(planned(2).token)
    assert check_failed.send.failure is None and check_failed.send.ok
    assert check_failed.decision == Decision(Verdict.CHECK_FAILED, failure=unreachable)


async def test_one_slot_is_claimed_by_exactly_one_instance(store: Store, database_url: str) -> None:
    other = await Store.open(database_url)
    try:
        contenders = [planned(1), planned(1, token="another-instance-token", instance="us-1")]
        results = await asyncio.gather(
            store.plan(contenders[0]), other.plan(contenders[1]), return_exceptions=True
        )
        assert sorted(type(r).__name__ for r in results) == ["SlotTaken", "int"]
        with pytest.raises(SlotTaken):
            await store.plan(planned(1, token="a-third-token"))
        # Another recipient or route in the same slot is a different claim.
        await store.plan(planned(1, token="t-recipient", recipient="other-seed"))
        await store.plan(planned(1, token="t-route", route="outlook"))
        # A reused token is a bug, not a lost race: it must not pass as SlotTaken.
        with pytest.raises(IntegrityError):
            await other.plan(planned(2, token="t-route"))
    finally:
        await other.close()
    assert len(await store.history()) == 3


async def test_unfinished_survives_a_crash(database_url: str) -> None:
    crashed = await Store.open(database_url)
    await crashed.upgrade()
    ids = [await crashed.plan(planned(n)) for n in (3, 1, 2, 4)]
    await crashed.plan(planned(5, instance="us-1"))  # another instance's: not resumed here
    await crashed.mark_sending(ids[2])
    await crashed.mark_sending(ids[0])
    await crashed.record_send(ids[0], sent_ok(planned(3).planned_at))
    await crashed.mark_sending(ids[3])
    await crashed.record_send(ids[3], sent_ok(planned(4).planned_at))
    await crashed.finish(ids[3], Decision(Verdict.MISSING))
    await crashed.close()

    restarted = await Store.open(database_url)
    try:
        left = await restarted.unfinished(instance="eu-1")
        assert len(await restarted.unfinished()) == 4
        assert [(r.planned.token, r.state) for r in left] == [
            (planned(1).token, "planned"),
            (planned(2).token, "sending"),
            (planned(3).token, "sent"),
        ]
        assert left[0].send is None and left[2].send.queue_id == "4XyZ1"
        await restarted.finish(left[0].id, Decision(Verdict.MISSING, reason="restart"))
        assert [r.planned.token for r in await restarted.unfinished(instance="eu-1")] == [
            planned(2).token,
            planned(3).token,
        ]
    finally:
        await restarted.close()


def late_in_inbox(sighting: Sighting, delivery_seconds: float | None = None) -> Decision:
    return Decision(
        Verdict.LATE,
        folder="INBOX",
        role=Role.INBOX,
        arrived_at=sighting.detected_at,
        arrival_source=ArrivalSource.DETECTED,
        delivery_seconds=delivery_seconds,
    )


async def test_mark_late_only_flips_missing(store: Store) -> None:
    lost, found = planned(1), planned(2)
    for probe, decision in ((lost, Decision(Verdict.MISSING)), (found, Decision(Verdict.INBOX))):
        probe_id = await store.plan(probe)
        await store.record_send(probe_id, sent_ok(probe.planned_at))
        await store.finish(probe_id, decision)
    finished_at = (await store.by_token(lost.token)).finished_at

    sighting = seen(lost, Role.INBOX)
    late = late_in_inbox(sighting, delivery_seconds=1234.5)
    assert await store.mark_late(lost.token, late, sighting) is True
    record = await store.by_token(lost.token)
    assert (record.decision, record.sighting) == (late, sighting)
    assert record.finished_at == finished_at  # when it was first decided

    assert await store.mark_late(lost.token, late, sighting) is False  # already late
    assert await store.mark_late(found.token, late, seen(found)) is False
    assert (await store.by_token(found.token)).decision == Decision(Verdict.INBOX)
    ghost = replace(sighting, token="no-such-token")
    assert await store.mark_late("no-such-token", late, ghost) is False
    with pytest.raises(ValueError):
        await store.mark_late(found.token, late, sighting)


async def test_a_canary_that_turns_up_revises_only_a_verdict_of_absence(store: Store) -> None:
    """An interrupted probe (no hand-off recorded) whose canary arrives after all becomes
    late, its failure gone; a refused send stays what it was."""
    lost, refused = planned(1), planned(2)
    lost_id = await store.plan(lost)
    await store.mark_sending(lost_id)
    await store.finish(lost_id, verdict.not_found(None, "restart"))
    auth = Failure("auth_failed", Phase.AUTH, False, "535 5.7.8 bad", 535, "5.7.8")
    refused_id = await store.plan(refused)
    await store.record_send(refused_id, SendOutcome(phase=Phase.AUTH, failure=auth))
    await store.finish(refused_id, verdict.not_found(SendOutcome(Phase.AUTH, failure=auth)))

    sighting = seen(lost, Role.INBOX)
    late = late_in_inbox(sighting)
    assert await store.mark_late(lost.token, late, sighting) is True
    record = await store.by_token(lost.token)
    assert (record.decision, record.sighting, record.advice) == (late, sighting, None)
    assert await store.mark_late(refused.token, late, seen(refused)) is False
    assert (await store.by_token(refused.token)).decision.failure == auth


async def test_history_is_newest_first_and_filtered(store: Store) -> None:
    routes = {1: "gmail", 2: "outlook", 3: "gmail", 4: "outlook", 5: "gmail"}
    for n in (3, 5, 1, 4, 2):
        await store.plan(planned(n, route=routes[n]))

    def tokens(records) -> list[str]:
        return [r.planned.token for r in records]

    assert tokens(await store.history()) == [planned(n).token for n in (5, 4, 3, 2, 1)]
    since = planned(3).planned_at
    assert tokens(await store.history(since=since)) == [planned(n).token for n in (5, 4, 3)]
    assert tokens(await store.history(route="gmail")) == [planned(n).token for n in (5, 3, 1)]
    assert tokens(await store.history(since=since, route="outlook", limit=5)) == [planned(4).token]
    assert tokens(await store.history(limit=2)) == [planned(n).token for n in (5, 4)]


async def test_latest_per_pair_is_the_newest_by_planned_time(store: Store) -> None:
    async def final(probe: PlannedProbe, verdict: Verdict) -> None:
        probe_id = await store.plan(probe)
        await store.record_send(probe_id, sent_ok(probe.planned_at))
        await store.finish(probe_id, Decision(verdict, delivery_seconds=float(len(probe.token))))

    # Planned out of time order, so the newest by id is not the newest by planned time.
    await final(planned(4), Verdict.SPAM)
    await final(planned(2), Verdict.INBOX)
    await final(planned(1), Verdict.INBOX)
    await final(planned(3), Verdict.MISSING)
    await store.mark_sending(await store.plan(planned(5)))
    await store.plan(planned(6))
    await final(planned(7, recipient="quiet", token="never-inbox"), Verdict.SEND_FAILED)
    await store.plan(planned(8, route="fresh", token="only-planned"))

    pairs = await store.latest_per_pair()
    assert [(p.route, p.recipient) for p in pairs] == [
        ("fresh", "seed"),
        ("gmail", "quiet"),
        ("gmail", "seed"),
    ]
    fresh, quiet, seed = pairs
    assert (fresh.last, fresh.last_inbox_at, fresh.in_flight) == (None, None, 1)
    assert quiet.last == await store.by_token("never-inbox")
    assert (quiet.last_inbox_at, quiet.in_flight) == (None, 0)
    assert seed.last == await store.by_token(planned(4).token)
    assert seed.last.decision.verdict is Verdict.SPAM
    assert (seed.last_inbox_at, seed.in_flight) == (planned(2).planned_at, 2)
    assert_utc(seed.last_inbox_at)

    # A canary found after its deadline is late, not a success.
    late = Decision(Verdict.LATE, folder="INBOX", role=Role.INBOX, delivery_seconds=900.0)
    assert await store.mark_late(planned(3).token, late, seen(planned(3), Role.INBOX))
    assert (await store.latest_per_pair())[2].last_inbox_at == planned(2).planned_at
