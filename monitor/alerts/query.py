"""Alerts as recorded: newest first, with how their messages went out (CLI, page, JSON)."""

from __future__ import annotations

from typing import Any

from monitor.adapters.alertstore import AlertStore, Delivery, evidence_json
from monitor.adapters.store import Store, missing_file
from monitor.alerts.message import investigate
from monitor.alerts.state import AlertState, Status, transition_id
from monitor.config.load import Config


async def load_alerts(cfg: Config, *, include_all: bool) -> list[tuple[AlertState, list[Delivery]]]:
    """Alerts newest first with the deliveries of their latest transition."""
    if missing_file(cfg.monitor.database) is not None:
        return []  # opening it would create it
    store = await Store.open(cfg.monitor.database)
    try:
        if not await store.has_table("alerts"):
            return []
        alerts = AlertStore(store.engine)
        wanted = (
            [Status.PENDING, Status.FIRING, Status.RESOLVED] if include_all else [Status.FIRING]
        )
        states = [s.state for s in (await alerts.load(statuses=wanted)).values()]
        if not include_all:
            pairs = {(r.name, to) for r in cfg.routes for to in r.recipients}
            states = [s for s in states if (s.route, s.recipient) in pairs]
        ids = {transition_id(s): s for s in states}
        found = await alerts.deliveries(transition_ids=ids, limit=10_000) if ids else []
    finally:
        await store.close()
    by_transition: dict[str, list[Delivery]] = {}
    for delivery in reversed(found):
        by_transition.setdefault(delivery.transition_id, []).append(delivery)
    states.sort(
        key=lambda s: s.fired_at or s.since or s.last_bad_at or s.last_seen_at, reverse=True
    )
    return [(s, by_transition.get(transition_id(s), [])) for s in states]


def alert_dict(state: AlertState, deliveries: list[Delivery]) -> dict[str, Any]:
    evidence = evidence_json(state.evidence)
    failure = evidence.pop("failure") if evidence else None
    if evidence is not None:
        evidence.pop("sender")
    return {
        "route": state.route,
        "to": state.recipient,
        "kind": state.kind.value,
        "status": state.status.value,
        "since": _iso(state.since),
        "fired_at": _iso(state.fired_at),
        "resolved_at": _iso(state.resolved_at),
        "last_good_at": _iso(state.last_good_at),
        "consecutive_failures": state.bad_streak,
        "canary": evidence,
        "failure": None
        if failure is None
        else {k: failure[k] for k in ("kind", "phase", "code", "enhanced", "message")},
        "investigate": investigate(state.route),
        "deliveries": [
            {
                "channel": d.channel,
                "target": d.target or None,
                "event": d.event,
                "status": d.status,
                "attempts": d.attempts,
                "last_error": d.last_error,
                "sent_at": _iso(d.sent_at),
            }
            for d in deliveries
        ],
    }


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment else None
