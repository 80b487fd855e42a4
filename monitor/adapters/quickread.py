"""The newest verdict of each (route, recipient), read with the standard library's sqlite3.

`status --nagios` is a passive check that a monitoring system runs every few minutes on every
host; importing SQLAlchemy alone costs more CPU than the whole check may (issue #17: 0.2 s).
This reads the daemon's SQLite file read-only (WAL lets it in beside the daemon's writes) and
answers the same question as `Store.latest_per_pair` for the fields a plugin line needs.
PostgreSQL goes through the Store as every other reader does.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote

_NEWEST = """
SELECT p.route, p.recipient, p.verdict, p.delivery_seconds, p.failure, p.planned_at
FROM (SELECT route, recipient FROM probes GROUP BY route, recipient) AS pairs
JOIN probes AS p ON p.id = (
    SELECT q.id FROM probes AS q
    WHERE q.route = pairs.route AND q.recipient = pairs.recipient AND q.state = 'final'
    ORDER BY q.planned_at DESC, q.id DESC LIMIT 1
)
"""


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (`sqlite:///relative.db`, `sqlite:////absolute.db`); None
    for other databases, `:memory:` and `?uri=true` URLs."""
    scheme, _, rest = url.partition("://")
    if scheme.split("+")[0] != "sqlite":
        return None
    location, _, query = rest.partition("?")
    if parse_qs(query).get("uri") == ["true"]:
        return None
    database = unquote(location[1:]) if location.startswith("/") else unquote(location)
    return Path(database) if database not in ("", ":memory:") else None


@dataclass(frozen=True, slots=True)
class NewestVerdict:
    route: str
    recipient: str
    verdict: str
    delivery_seconds: float | None
    failure: str | None
    planned_at: datetime


def newest_verdicts(database: Path) -> list[NewestVerdict] | None:
    """None when the file has no probes table yet (the daemon never started on it)."""
    uri = f"{database.resolve().as_uri()}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=5.0)
    try:
        known = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'probes'"
        ).fetchone()
        if known is None:
            return None
        rows = connection.execute(_NEWEST).fetchall()
    finally:
        connection.close()
    return [
        NewestVerdict(route, to, verdict, seconds, failure, _utc(planned))
        for route, to, verdict, seconds, failure, planned in rows
    ]


def _utc(text: str) -> datetime:
    # The store writes UTC as naive text on SQLite (tables.UTCDateTime).
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
