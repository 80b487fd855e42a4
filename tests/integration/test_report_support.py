"""What the report's integration tests share: a store on SQLite or the harness's private
PostgreSQL, probes recorded through the Store API as the runner records them, the rollup
recomputed from the probes, the HTML report's cells, and the command run as a user runs it.
No tests here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import text

from monitor.adapters.store import Store
from monitor.core.models import (
    Decision,
    Failure,
    Phase,
    PlannedProbe,
    Role,
    SendOutcome,
    Sighting,
    SmtpReply,
    Verdict,
)
from monitor.core.receipt import AuthResults, Check, Receipt
from monitor.reports.model import bucket_of, days_period
from tests.integration.support import REPO

ATHENS = "Europe/Athens"
WEEK = days_period(datetime(2026, 10, 19).date(), datetime(2026, 10, 25).date(), ATHENS)
REFUSED = Failure("rejected", Phase.RCPT_TO, False, "5.7.1 Client host rejected", 550, "5.7.1")
IMAP_AUTH = Failure("imap_auth_failed", Phase.IMAP_AUTH, False, "NO [AUTHENTICATIONFAILED]")


@pytest.fixture(name="store", params=["sqlite", "postgresql"])
async def report_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """`store`, migrated to head: import `report_store` to use it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/mc.db"
    else:  # a fresh database of its own on the harness's private PostgreSQL
        url = str(request.getfixturevalue("postgres").create_database())
    opened = await Store.open(url)
    await opened.upgrade()
    yield opened
    await opened.close()


async def record(
    store: Store,
    n: int,
    at: datetime,
    verdict: Verdict,
    *,
    route: str = "seeds",
    to: str = "g",
    seconds: float | None = None,
    dmarc: str | None = None,
    failure: Failure | None = None,
    instance: str = "default",
) -> PlannedProbe:
    """One probe through the Store API, as the runner of `instance` records it."""
    probe = PlannedProbe(
        token=f"{n:020d}.{int(at.timestamp())}.mac",
        route=route,
        sender="alice",
        recipient=to,
        slot=at,
        planned_at=at,
        deadline_at=at + timedelta(minutes=10),
        message_id=f"<{n}.canary@example.org>",
        instance=instance,
    )
    probe_id = await store.plan(probe)
    if verdict is Verdict.SEND_FAILED:
        await store.record_send(probe_id, SendOutcome(phase=Phase.RCPT_TO, failure=failure))
        await store.finish(probe_id, Decision(verdict, failure=failure))
        return probe
    reply = SmtpReply(Phase.DATA, 250, "2.0.0", "Ok: queued")
    await store.record_send(probe_id, SendOutcome(Phase.DONE, (reply,), handoff_at=at))
    seen = None
    if seconds is not None:
        seen = sighting(probe, n, verdict, seconds, dmarc)
    decision = Decision(
        verdict,
        folder=seen.folder if seen else None,
        role=seen.role if seen else None,
        arrived_at=at + timedelta(seconds=seconds) if seconds is not None else None,
        delivery_seconds=seconds,
        failure=failure,
    )
    await store.finish(probe_id, decision, seen)
    return probe


def sighting(
    probe: PlannedProbe, uid: int, verdict: Verdict, seconds: float, dmarc: str | None
) -> Sighting:
    auth = AuthResults("mx.example", spf=Check("pass"), dmarc=Check(dmarc) if dmarc else None)
    spam = verdict is Verdict.SPAM
    return Sighting(
        token=probe.token,
        folder="Junk" if spam else "INBOX",
        role=Role.SPAM if spam else Role.INBOX,
        uid=uid,
        uidvalidity=1,
        detected_at=probe.planned_at + timedelta(seconds=seconds),
        receipt=Receipt(auth=auth),
    )


async def rollup_matches_probes(store: Store, *, by_instance: bool = True) -> int:
    """Compare the trigger-kept rollup with one computed here from the probes themselves
    (`by_instance` False: the rollup of alembic 0005, before it had the instance)."""
    instance = "instance" if by_instance else "''"
    async with store.engine.connect() as db:
        probes = (
            await db.execute(
                text(
                    f"SELECT route, recipient, {instance}, planned_at, verdict, delivery_seconds, "
                    "auth_results FROM probes WHERE verdict IS NOT NULL"
                )
            )
        ).all()
        rollup = (
            await db.execute(
                text(
                    f"SELECT hour, route, recipient, {instance}, verdict, bucket, dmarc, n, "
                    "max_seconds FROM probe_rollup"
                )
            )
        ).all()
    expected: Counter[tuple] = Counter()
    longest: dict[tuple, float] = {}
    for route, recipient, sender, planned, verdict, seconds, auth in probes:
        auth = json.loads(auth) if isinstance(auth, str) else auth
        dmarc = ((auth or {}).get("dmarc") or {}).get("result") or ""
        key = (
            _hour(planned),
            route,
            recipient,
            sender,
            verdict,
            -1 if seconds is None else bucket_of(seconds),
            dmarc,
        )
        expected[key] += 1
        if seconds is not None:
            longest[key] = max(longest.get(key, seconds), seconds)
    found = {(_hour(h), r, t, i, v, b, d): (n, m) for h, r, t, i, v, b, d, n, m in rollup}
    assert found == {key: (n, longest.get(key)) for key, n in expected.items()}
    return len(found)


def _hour(value: object) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


class Cells(HTMLParser):
    """Texts of the cells that carry data-field, per row (keyed by its data-* attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[tuple[str, ...], dict[str, str]] = {}
        self.images: list[str] = []
        self._row: dict[str, str] | None = None
        self._field: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "tr":
            key = tuple(f"{k}={v}" for k, v in found.items() if k.startswith("data-"))
            self._row = self.rows.setdefault(key, {})
        elif tag == "td" and "data-field" in found:
            self._field = found["data-field"]
        elif tag == "img":
            self.images.append(found["src"])

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._field is not None:
            self._row[self._field] = self._row.get(self._field, "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._field = None


def report_config(folder: Path, database: str) -> Path:
    """Route "seeds" from alice to Gmail (g) and Outlook (o); reports in Athens time. The
    accounts' password is read from $PW (the tests set it: the command reads it too)."""
    config = folder / "mailcanary.toml"
    config.write_text(
        f'[monitor]\ndatabase = "{database}"\nstate_dir = "{folder}/state"\n'
        f'[reports]\ntimezone = "{ATHENS}"\n'
        '[[accounts]]\nname = "alice"\nemail = "alice@example.org"\npassword_env = "PW"\n'
        'smtp = { host = "127.0.0.1", port = 2525, security = "none" }\n'
        '[[accounts]]\nname = "g"\nemail = "seed@gmail.com"\nprovider = "gmail"\n'
        'password_env = "PW"\n'
        '[[accounts]]\nname = "o"\nemail = "seed@outlook.com"\nprovider = "outlook"\n'
        'password_env = "PW"\n'
        '[[routes]]\nname = "seeds"\nfrom = "alice"\nto = ["g", "o"]\n'
    )
    return config


def mailcanary(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command, run as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", "--config", str(config), *args],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
