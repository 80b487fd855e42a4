"""Shared work in a real PostgreSQL: leases change hands only when they may, a dead
instance's probes are adopted once, one canary key for all, and 0007 downgrades exactly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from monitor.adapters.leases import Owner, SharedWork
from monitor.adapters.store import Store
from monitor.core.canary import new_key
from monitor.core.models import Role, Sighting, utcnow
from monitor.core.sharing import InstanceTaken
from tests.integration.test_report_instances import migrate, schema
from tests.integration.test_store import planned

LEASE = 1.0  # seconds; the tests wait for expiry by polling the database's clock


@pytest.fixture
async def store(postgres) -> AsyncIterator[Store]:
    store = await Store.open(postgres.create_database())
    await store.upgrade()
    yield store
    await store.close()


async def until_expired(work: SharedWork, mailbox: str) -> None:
    end = time.monotonic() + 10 * LEASE
    while time.monotonic() < end:
        fleet = await work.fleet()
        if fleet.watcher_of(mailbox) is None:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"the lease on {mailbox} never expired")


async def test_a_lease_is_taken_once_renewed_by_its_owner_and_free_after_expiry(store) -> None:
    a, b = SharedWork(store.engine, LEASE), SharedWork(store.engine, LEASE)
    await a.heartbeat("a", first=True)
    await b.heartbeat("b", first=True)
    assert await a.acquire("a", take={"m1", "m2"}, renew=()) == {"m1", "m2"}
    # b cannot take a lease that is held, nor renew one it does not hold.
    assert await b.acquire("b", take={"m1"}, renew={"m2"}) == set()
    assert await a.acquire("a", take=(), renew={"m1", "m2"}) == {"m1", "m2"}
    fleet = await b.fleet()
    assert fleet.watcher_of("m1") == "a" and fleet.live == {"a", "b"}
    assert [i.mailboxes for i in fleet.instances if i.name == "a"] == [("m1", "m2")]

    await until_expired(b, "m1")  # a stopped renewing: after the lease time it is free
    assert await b.acquire("b", take={"m1"}, renew=()) == {"m1"}
    assert await a.acquire("a", take=(), renew={"m1"}) == set()  # a came back too late


async def test_a_mailbox_passes_to_its_ready_successor_only(store) -> None:
    a, b = SharedWork(store.engine, 30), SharedWork(store.engine, 30)
    await a.heartbeat("a", first=True)
    await b.heartbeat("b", first=True)
    await a.acquire("a", take={"m1"}, renew=())
    assert not await a.hand_over("a", "m1", "b")  # b has not offered itself yet
    await b.offer("b", {"m1"})
    assert (await a.fleet()).leases["m1"].successor == "b"
    assert not await b.hand_over("b", "m1", "b")  # only the owner hands over
    assert await a.hand_over("a", "m1", "b")
    lease = (await a.fleet()).leases["m1"]
    assert (lease.owner, lease.successor) == ("b", None)

    await b.leave("b")  # SIGTERM: its leases are free at once and it no longer counts
    fleet = await a.fleet()
    assert fleet.leases == {} and fleet.live == {"a"}
    assert [i.stopped_at is not None for i in fleet.instances if i.name == "b"] == [True]


async def test_a_dead_instances_unfinished_probes_are_adopted_once(store) -> None:
    dead, live = SharedWork(store.engine, LEASE), SharedWork(store.engine, LEASE)
    await dead.heartbeat("dead", first=True)
    ids = [await store.plan(planned(n, instance="dead")) for n in (1, 2)]
    await store.mark_sending(ids[0])
    mine = await store.plan(planned(3, instance="live"))
    await live.heartbeat("live", first=True)
    recipient = planned(1).recipient
    assert await live.adopt("live", {recipient}) == []  # "dead" still beats
    end = time.monotonic() + 10 * LEASE
    adopted = []
    while not adopted and time.monotonic() < end:
        await live.heartbeat("live")
        adopted = await live.adopt("live", {recipient})
        await asyncio.sleep(0.05)
    assert sorted(r.id for r in adopted) == ids
    assert all(r.planned.instance == "dead" for r in adopted)  # the sender stays on record
    assert await live.adopt("live", {recipient}) == []
    # Back from the dead, it finds its probes taken; the adopter resumes them after a crash.
    await dead.heartbeat("dead", first=True)
    assert await dead.claim_own("dead") == []
    assert sorted(r.id for r in await live.claim_own("live")) == sorted([*ids, mine])


async def test_instances_starting_together_share_one_canary_key(store) -> None:
    works = [SharedWork(store.engine, LEASE) for _ in range(4)]
    keys = await asyncio.gather(*(w.canary_key(new_key()) for w in works))
    assert len(set(keys)) == 1 and len(keys[0]) == len(new_key())


async def test_a_sighting_recorded_by_the_watcher_reads_back_whole(store) -> None:
    work = SharedWork(store.engine, LEASE)
    seen = Sighting(
        token="tok-1",
        folder="Junk",
        role=Role.SPAM,
        uid=4_000_000_000,
        uidvalidity=7,
        detected_at=utcnow(),
        internal_date=utcnow().replace(microsecond=0),
        received_at=None,
        message_id="<m@x>",
    )
    await work.record_sighting(seen, "b")
    await work.record_sighting(seen, "c")  # a second watcher during a hand-over: no error
    assert await work.sightings(["tok-1", "tok-2"]) == [seen]
    assert await work.prune_sightings(older_than=3600) == 0


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
async def test_0007_downgrades_to_0006_exactly(dialect, postgres, tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/mc.db" if dialect == "sqlite" else postgres.create_database()
    store = await Store.open(url)
    try:
        await migrate(store, "upgrade", "0006")
        before = await schema(store)
        await migrate(store, "upgrade", "0007")
        assert (await schema(store))[1] == "0007"
        await migrate(store, "downgrade", "0006")
        assert await schema(store) == before
        # A probe written at head survives going down past 0007 and back up.
        await migrate(store, "upgrade", "head")
        await store.plan(planned(1))
        await migrate(store, "downgrade", "0006")
        await migrate(store, "upgrade", "head")
        assert (await store.by_token(planned(1).token)) is not None
    finally:
        await store.close()


async def test_one_process_per_instance_name_and_a_silent_one_is_replaced(store) -> None:
    a = SharedWork(store.engine, LEASE, Owner("token-a", "host-a", 101))
    b = SharedWork(store.engine, LEASE, Owner("token-b", "host-b", 202))
    # Two processes taking the same free name at once: one wins.
    won = await asyncio.gather(a.claim("i1", first=True), b.claim("i1", first=True))
    assert sorted(won) == [False, True]
    holder, loser = (a, b) if won[0] else (b, a)
    with pytest.raises(
        InstanceTaken,
        match=rf'"i1" is already running .* host {holder.owner.host} pid {holder.owner.pid}\)',
    ):
        await loser.heartbeat("i1", first=True)
    await holder.heartbeat("i1")  # the holder renews as before
    with pytest.raises(InstanceTaken):
        await loser.heartbeat("i1")  # and the loser cannot renew it later either

    # The holder goes silent (crashed): after the lease the other takes the name.
    end = time.monotonic() + 10 * LEASE
    while not await loser.claim("i1", first=True):
        assert time.monotonic() < end, "the silent name was never free"
        await asyncio.sleep(0.05)
    # The old holder, back from its stall, has lost it; leaving does not stop the new one.
    with pytest.raises(InstanceTaken, match=rf"pid {loser.owner.pid}\)"):
        await holder.heartbeat("i1")
    assert await loser.acquire("i1", take={"m1"}, renew=()) == {"m1"}
    await holder.leave("i1")
    fleet = await loser.heartbeat("i1")
    assert [(i.name, i.live, i.mailboxes) for i in fleet.instances] == [("i1", True, ("m1",))]
