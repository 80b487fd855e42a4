"""Several daemons on one PostgreSQL: the (route, recipient, slot) claim decides who sends.

Three instances with the same routes start at once; every slot gets exactly one canary,
and killing one of them (the one that sent last) loses no slot: the others claim it.
They share the seed mailboxes through leases: one watcher per mailbox, a dead instance's
mailboxes and unfinished probes taken over after the lease time, canaries cleaned up by
whoever watches, one key for all.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from urllib.request import urlopen

import asyncpg
import pytest

from monitor.adapters.store import Store
from monitor.core.canary import TOKEN_HEADER
from monitor.core.models import Verdict
from monitor.harness.demo import write_config
from tests.integration.fleet_support import SessionSampler, leases, query
from tests.integration.support import Daemon, free_port, wait_for
from tests.integration.test_report_support import mailcanary

pytestmark = pytest.mark.mailstack

INTERVAL = 2.0
ROUTES = [("ha", "alice", {"bob": Verdict.INBOX})]


async def _claims(url: str) -> list[tuple[datetime, str, str]]:
    connection = await asyncpg.connect(url)
    try:
        found = await connection.fetch(
            "SELECT slot, instance, token FROM probes WHERE route = 'ha' AND recipient = 'bob'"
            " ORDER BY slot"
        )
    except asyncpg.UndefinedTableError:  # not migrated yet
        return []
    finally:
        await connection.close()
    return [(row["slot"], row["instance"], row["token"]) for row in found]


def claims(url: str) -> list[tuple[datetime, str, str]]:
    return asyncio.run(_claims(url))


def assert_every_slot_once(found: list[tuple[datetime, str, str]]) -> None:
    slots = [slot for slot, _, _ in found]
    assert len(slots) == len(set(slots)), "a slot was claimed twice"
    step = timedelta(seconds=INTERVAL)
    expected = [slots[0] + n * step for n in range(round((slots[-1] - slots[0]) / step) + 1)]
    assert slots == expected, f"slots missing: {sorted(set(expected) - set(slots))}"


async def test_instances_starting_together_migrate_once(postgres) -> None:
    url = postgres.create_database()
    stores = [await Store.open(url) for _ in range(3)]
    try:
        # Without the migration lock two of these fail on a duplicate pg_type row.
        outcomes = await asyncio.gather(*(s.upgrade() for s in stores), return_exceptions=True)
        assert outcomes == [None, None, None]
        assert await stores[0].unfinished() == []
    finally:
        for store in stores:
            await store.close()


def test_three_instances_one_canary_per_slot_and_none_lost_when_one_dies(
    mailstack, postgres, tmp_path: Path
) -> None:
    url = postgres.create_database()
    daemons: dict[str, Daemon] = {}
    for name in ("a", "b", "c"):
        # One key for all (shared state_dir): any instance can verify any canary.
        monitor = (
            f'database = "{url}"\nstate_dir = "{tmp_path}/state"\ninstance = "{name}"\n'
            f'interval = "{INTERVAL:g}s"\ndeadline = "8s"\npoll_interval = "2s"\ncleanup = false\n'
            'listen = ""\n'
        )
        config = write_config(mailstack, tmp_path / name, routes=ROUTES, monitor=monitor)
        daemons[name] = Daemon(config, tmp_path / f"{name}.log")
    try:
        for d in daemons.values():
            d.start()
        found = wait_for(lambda: (c := claims(url)) and len(c) >= 6 and c, 60, "six slots")
        assert_every_slot_once(found)  # type: ignore[arg-type]
        contested = [d.log.read_text().count("slot already claimed") for d in daemons.values()]
        assert sum(contested) > 0, "the daemons never competed for a slot"

        # Kill the instance that won the newest slot: its peers must take over from there.
        victim = daemons[found[-1][1]]  # type: ignore[index]
        assert victim.signal(signal.SIGKILL) == -signal.SIGKILL
        last = found[-1][0]  # type: ignore[index]
        after = wait_for(
            lambda: (c := claims(url)) and c[-1][0] >= last + timedelta(seconds=3 * INTERVAL) and c,
            60,
            "three more slots after the kill",
        )
        assert_every_slot_once(after)  # type: ignore[arg-type]
        survivors = {instance for slot, instance, _ in after if slot > last}  # type: ignore[union-attr]
        assert survivors and victim.config.parent.name not in survivors
    finally:
        for d in daemons.values():
            d.stop()

    # Every canary reached bob at most once, and only canaries of claimed slots were sent.
    headers = [
        message_from_bytes(raw, policy=default) for raw in mailstack.list_messages("bob", "INBOX")
    ]
    tokens = [str(h[TOKEN_HEADER]) for h in headers if h[TOKEN_HEADER] is not None]
    assert len(tokens) == len(set(tokens)), "a canary was delivered twice"
    claimed = {token for _, _, token in claims(url)}
    ours = [token for token in tokens if token in claimed]
    assert ours and len(ours) >= len(after) - 3  # type: ignore[arg-type]


# -- sharing the mailboxes: leases, takeover, one key -------------------------------------

LEASE = 5.0
DEADLINE = 8.0
FLEET = {
    "bob": Verdict.INBOX,
    "vetted": Verdict.INBOX,
    "carol": Verdict.SPAM,
    "dmitri": Verdict.SPAM,
    "gina": Verdict.SPAM,
    "yuki": Verdict.SPAM,
}
MARGIN = 3.0  # a lease round (lease/3), a search and a relay poll


def fleet_config(mailstack, url: str, tmp_path: Path, name: str) -> Path:
    # Each its own state_dir: the key they share comes from the database, not a file.
    monitor = (
        f'database = "{url}"\nstate_dir = "{tmp_path}/{name}/state"\ninstance = "{name}"\n'
        f'interval = "3s"\ndeadline = "{DEADLINE:g}s"\nlease = "{LEASE:g}s"\n'
        'poll_interval = "2s"\ncleanup = true\ndrain_timeout = "10s"\n'
        f'listen = "127.0.0.1:{free_port()}"\n'
    )
    routes = [("fleet", "alice", FLEET)]
    return write_config(mailstack, tmp_path / name, routes=routes, monitor=monitor)


def owners(url: str) -> Counter[str]:
    return Counter(owner for owner, _ in leases(url).values())


def balanced(url: str, names: set[str]) -> bool:
    """Every mailbox leased, by these instances only, in fair shares, nothing in hand-over."""
    held = leases(url)
    share = -(-len(FLEET) // len(names))
    return (
        set(held) == set(FLEET)
        and {owner for owner, _ in held.values()} == names
        and all(successor is None for _, successor in held.values())
        and max(owners(url).values()) <= share
    )


def finals(url: str, since: datetime | None = None) -> Counter[str]:
    rows = query(
        url,
        "SELECT recipient FROM probes WHERE state = 'final' AND planned_at >= $1",
        since or datetime.min.replace(tzinfo=UTC),
    )
    return Counter(row["recipient"] for row in rows)


def kill_mid_probe(url: str, daemons: dict[str, Daemon], among: set[str]) -> tuple[str, list[int]]:
    """SIGKILL the first of `among` seen with a canary in flight; that instance and the ids
    of its probes left unfinished."""
    end = time.monotonic() + 30
    while time.monotonic() < end:
        busy = query(
            url,
            "SELECT instance FROM probes WHERE state IN ('sending', 'sent')"
            " AND instance = ANY($1::text[]) LIMIT 1",
            sorted(among),
        )
        if busy:
            name = busy[0]["instance"]
            assert daemons[name].signal(signal.SIGKILL) == -signal.SIGKILL
            left = query(
                url,
                "SELECT id FROM probes WHERE state <> 'final'"
                " AND coalesce(adopted_by, instance) = $1",
                name,
            )
            return name, [row["id"] for row in left]
        time.sleep(0.01)
    pytest.fail(f"none of {sorted(among)} had a canary in flight")


def test_instances_share_the_mailboxes_and_take_over_from_the_dead(
    mailstack, postgres, tmp_path: Path
) -> None:
    url = postgres.create_database()
    names = ["a", "b", "c"]
    daemons = {
        n: Daemon(fleet_config(mailstack, url, tmp_path, n), tmp_path / f"{n}.log") for n in names
    }
    mailboxes = sorted(FLEET)
    sampler = SessionSampler(mailstack, url, mailboxes)
    try:
        with sampler:
            for d in daemons.values():
                d.start()
            wait_for(lambda: balanced(url, set(names)), 60, "two mailboxes per instance")
            wait_for(lambda: min(finals(url)[m] for m in mailboxes) >= 2, 60, "two verdicts each")

            # Two killed mid-probe; their unfinished probes need a verdict from the third.
            first, first_left = kill_mid_probe(url, daemons, set(names))
            killed_at = time.monotonic()
            second, second_left = kill_mid_probe(url, daemons, set(names) - {first})
            assert first_left and second_left, "killed between probes, not mid-probe"
            survivor = (set(names) - {first, second}).pop()
            left = first_left + second_left
            wait_for(
                lambda: all_final(url, left), LEASE + DEADLINE + MARGIN, "verdicts of the dead"
            )
            assert time.monotonic() - killed_at <= LEASE + DEADLINE + MARGIN
            wait_for(lambda: balanced(url, {survivor}), 3 * LEASE, "the survivor watching all")

            # One comes back; the other never does. They share the mailboxes again.
            daemons[second].start()
            back = datetime.now(UTC)
            wait_for(lambda: balanced(url, {survivor, second}), 60, "three mailboxes each")
            wait_for(lambda: min(finals(url, back)[m] for m in mailboxes) >= 2, 60, "verdicts")
            status = json_lines(mailcanary(daemons[survivor].config, "status", "--json"))
            held = leases(url)
            assert {row["to"]: row["watched_by"] for row in status} == {
                m: held[m][0] for m in mailboxes
            }
            assert all(row["heartbeat_at"] for row in status)
            table = mailcanary(daemons[survivor].config, "status").stdout
            assert re.search(rf"\b{first}\b.*silent", table), table
            scrape = metrics_of(daemons[survivor].config)
            shown = {
                f'mailcanary_mailbox_watcher_info{{account="{m}",instance="{held[m][0]}"}} 1.0'
                for m in mailboxes
            }
            wait_for(lambda: shown <= set(scrape().splitlines()), LEASE, "who watches in /metrics")
            beats = re.findall(
                r'instance_heartbeat_timestamp_seconds\{instance="(\w+)"\}', scrape()
            )
            assert sorted(beats) == names

            # SIGTERM: the mailboxes pass to the other before it exits, nothing is left held.
            assert daemons[second].signal(signal.SIGTERM) == 0
            assert owners(url) == Counter({survivor: len(FLEET)})
            assert daemons[survivor].signal(signal.SIGTERM) == 0
            assert leases(url) == {}
    finally:
        for d in daemons.values():
            d.stop()

    check_record(url, mailstack)
    check_sessions(sampler, mailboxes)


def metrics_of(config: Path):
    listen = re.search(r'listen = "([^"]+)"', config.read_text())
    assert listen is not None
    return lambda: urlopen(f"http://{listen[1]}/metrics", timeout=10).read().decode()


def all_final(url: str, ids: list[int]) -> bool:
    found = query(
        url, "SELECT count(*) AS n FROM probes WHERE id = ANY($1::int[]) AND state = 'final'", ids
    )
    return found[0]["n"] == len(ids)


def json_lines(done) -> list[dict]:
    assert done.returncode in (0, 1), done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def check_record(url: str, mailstack) -> None:
    rows = query(url, "SELECT * FROM probes WHERE route = 'fleet'")
    assert rows and all(row["state"] == "final" for row in rows)
    for recipient in FLEET:
        slots = sorted(row["slot"] for row in rows if row["recipient"] == recipient)
        step = timedelta(seconds=3)
        expected = [slots[0] + n * step for n in range(round((slots[-1] - slots[0]) / step) + 1)]
        assert slots == expected, f"{recipient}: slots missing or doubled"
    # Every canary handed off was found, wherever it was seen and whoever sent it.
    handed = [row for row in rows if row["handoff_at"] is not None]
    wrong = [
        (row["recipient"], row["verdict"], row["instance"], row["adopted_by"])
        for row in handed
        if row["verdict"] != FLEET[row["recipient"]].value
    ]
    assert not wrong, wrong
    # A canary never handed off (its sender died in the SMTP conversation) is not missing.
    assert [
        row["id"] for row in rows if row["handoff_at"] is None and row["verdict"] == "missing"
    ] == []
    assert any(row["adopted_by"] for row in rows), "no probe was taken over"
    # Exactly one delivery per canary handed off (Dovecot's log), none left in a mailbox.
    stored = Counter(
        line.split("msgid=", 1)[1].split(">", 1)[0] + ">"
        for line in mailstack.dovecot_log.read_text(errors="replace").splitlines()
        if "msgid=" in line and "stored mail into mailbox" in line
    )
    assert [row["message_id"] for row in handed if stored[row["message_id"]] != 1] == []
    ours = {row["token"] for row in rows}
    for name in FLEET:
        user = mailstack.user(name)
        for folder in ("INBOX", user.spam_folder):
            for raw in mailstack.list_messages(name, folder):
                token = message_from_bytes(raw, policy=default)[TOKEN_HEADER]
                assert str(token) not in ours, f"a canary left in {name}/{folder}"


def check_sessions(sampler: SessionSampler, mailboxes: list[str]) -> None:
    counted = sampler.watching()
    assert len(counted) > 100, "too few samples to say anything"
    start = counted[0][0].at
    worst = max(
        ((max(per.values()), s.at - start, s.leases) for s, per in counted), key=lambda w: w[0]
    )
    assert 1 <= worst[0] <= 2, worst  # one session per watcher; two watchers in a hand-over
    settled = [
        (sample, mailbox, n)
        for sample, per in counted
        for mailbox, n in per.items()
        if sampler.settled(sample, mailbox, window=LEASE / 3 + 1)
    ]
    # Not vacuous: every mailbox spent seconds with one owner and nothing changing hands. In
    # seconds, not a sample count: `doveadm who` slows down on a loaded host (16 samples once).
    for mailbox in mailboxes:
        times = [sample.at for sample, m, _ in settled if m == mailbox]
        assert len(times) >= 10 and max(times) - min(times) >= 2.0, (mailbox, len(times))
    crowded = [(m, n) for _, m, n in settled if n > 1]
    assert not crowded, crowded
