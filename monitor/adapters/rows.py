"""Between probe rows and the domain's dataclasses, both ways; no I/O."""

from __future__ import annotations

from typing import Any

from monitor.adapters.share_tables import SightingRow
from monitor.adapters.tables import ProbeRow
from monitor.core.catalogue import Advice, advise
from monitor.core.models import (
    ArrivalSource,
    Decision,
    Failure,
    Phase,
    PlannedProbe,
    ProbeRecord,
    Role,
    SendOutcome,
    Sighting,
    SmtpReply,
    Verdict,
)
from monitor.core.receipt import auth_json, hops_json, receipt_from_json, spam_json


def planned_values(probe: PlannedProbe) -> dict[str, Any]:
    return {
        "token": probe.token,
        "route": probe.route,
        "sender": probe.sender,
        "recipient": probe.recipient,
        "slot": probe.slot,
        "planned_at": probe.planned_at,
        "deadline_at": probe.deadline_at,
        "message_id": probe.message_id,
        "instance": probe.instance,
    }


def send_values(outcome: SendOutcome) -> dict[str, Any]:
    # handoff_monotonic is not stored: a monotonic clock means nothing to another process.
    last = outcome.last_reply
    values: dict[str, Any] = {
        "smtp_phase": outcome.phase.value,
        "smtp_code": last.code if last else None,
        "smtp_enhanced": last.enhanced if last else None,
        "smtp_message": last.text if last else None,
        "smtp_replies": [
            {"phase": r.phase.value, "code": r.code, "enhanced": r.enhanced, "text": r.text}
            | ({"shared": True} if r.shared else {})
            for r in outcome.replies
        ],
        "queue_id": outcome.queue_id,
        "tls_version": outcome.tls_version,
        "handoff_at": outcome.handoff_at,
    }
    if outcome.failure is not None:
        values |= _failure_values(outcome.failure)
    return values


def _failure_values(failure: Failure) -> dict[str, Any]:
    # The advice is stored as given: history shows what was said then, whatever the
    # catalogue says later.
    advice = advise(failure)
    return {
        "failure": failure.kind,
        "failure_phase": failure.phase.value,
        "failure_transient": failure.transient,
        "failure_message": failure.message,
        "failure_code": failure.code,
        "failure_enhanced": failure.enhanced,
        "failure_explanation": advice.explanation,
        "failure_remedy": advice.remedy,
    }


def no_failure() -> dict[str, Any]:
    """Every failure column, emptied."""
    return dict.fromkeys(_failure_values(Failure("", Phase.DONE, False, "")), None)


def decision_values(decision: Decision, sighting: Sighting | None) -> dict[str, Any]:
    role = decision.role or (sighting.role if sighting else None)
    values: dict[str, Any] = {
        "verdict": decision.verdict.value,
        "folder": decision.folder or (sighting.folder if sighting else None),
        "folder_role": role.value if role else None,
        "arrived_at": decision.arrived_at,
        "arrival_source": decision.arrival_source.value if decision.arrival_source else None,
        "delivery_seconds": decision.delivery_seconds,
        "reason": decision.reason,
    }
    # The window (0007) only when known: a decision without one then writes to a schema
    # from before it too (tests fill a 0005 database to check 0006's migration).
    if decision.arrived_after is not None or decision.arrived_before is not None:
        values |= {"arrived_after": decision.arrived_after}
        values |= {"arrived_before": decision.arrived_before}
    # Without a failure of its own the decision keeps the one the send recorded.
    if decision.failure is not None:
        values |= _failure_values(decision.failure)
    if sighting is not None:
        values |= sighting_values(sighting)
    return values


def sighting_values(sighting: Sighting) -> dict[str, Any]:
    """Where and when a canary was seen, in the columns `probes` and `sightings` share."""
    values: dict[str, Any] = {
        "uid": sighting.uid,
        "uidvalidity": sighting.uidvalidity,
        "detected_at": sighting.detected_at,
        "internal_date": sighting.internal_date,
        "received_at": sighting.received_at,
        "seen_message_id": sighting.message_id,
    }
    if sighting.receipt is not None:
        values |= {
            "auth_results": auth_json(sighting.receipt.auth),
            "hops": hops_json(sighting.receipt.hops),
            "spam_headers": spam_json(sighting.receipt),
        }
    return values


def record(row: ProbeRow) -> ProbeRecord:
    failure = _failure(row)
    return ProbeRecord(
        id=row.id,
        planned=PlannedProbe(
            token=row.token,
            route=row.route,
            sender=row.sender,
            recipient=row.recipient,
            slot=row.slot,
            planned_at=row.planned_at,
            deadline_at=row.deadline_at,
            message_id=row.message_id,
            instance=row.instance,
        ),
        state=row.state,
        send=_send(row, failure),
        sighting=sighting(row),
        decision=_decision(row, failure),
        finished_at=row.finished_at,
        advice=_advice(row, failure),
    )


def _advice(row: ProbeRow, failure: Failure | None) -> Advice | None:
    if failure is None:
        return None
    if row.failure_explanation is None or row.failure_remedy is None:
        return advise(failure)  # a row recorded before the catalogue existed
    return Advice(row.failure_explanation, row.failure_remedy)


def _failure(row: ProbeRow) -> Failure | None:
    if row.failure is None or row.failure_phase is None:
        return None
    return Failure(
        kind=row.failure,
        phase=Phase(row.failure_phase),
        transient=bool(row.failure_transient),
        message=row.failure_message or "",
        code=row.failure_code,
        enhanced=row.failure_enhanced,
    )


def _send(row: ProbeRow, failure: Failure | None) -> SendOutcome | None:
    if row.smtp_phase is None:
        return None
    phase = Phase(row.smtp_phase)
    replies = tuple(
        SmtpReply(
            phase=Phase(r["phase"]),
            code=r["code"],
            enhanced=r["enhanced"],
            text=r["text"],
            shared=r.get("shared", False),  # rows from before shared sessions have none
        )
        for r in row.smtp_replies or ()
    )
    return SendOutcome(
        phase=phase,
        replies=replies,
        # A send that reached DONE did not fail; a failure on such a row is the watcher's.
        failure=failure if phase is not Phase.DONE else None,
        queue_id=row.queue_id,
        tls_version=row.tls_version,
        handoff_at=row.handoff_at,
    )


def sighting(row: ProbeRow | SightingRow) -> Sighting | None:
    if (
        row.uid is None
        or row.uidvalidity is None
        or row.detected_at is None
        or row.folder is None
        or row.folder_role is None
    ):
        return None
    return Sighting(
        token=row.token,
        folder=row.folder,
        role=Role(row.folder_role),
        uid=row.uid,
        uidvalidity=row.uidvalidity,
        detected_at=row.detected_at,
        internal_date=row.internal_date,
        received_at=row.received_at,
        message_id=row.seen_message_id,
        receipt=receipt_from_json(row.auth_results, row.hops, row.spam_headers),
    )


def _decision(row: ProbeRow, failure: Failure | None) -> Decision | None:
    if row.verdict is None:
        return None
    return Decision(
        verdict=Verdict(row.verdict),
        folder=row.folder,
        role=Role(row.folder_role) if row.folder_role else None,
        arrived_at=row.arrived_at,
        arrival_source=ArrivalSource(row.arrival_source) if row.arrival_source else None,
        arrived_after=row.arrived_after,
        arrived_before=row.arrived_before,
        delivery_seconds=row.delivery_seconds,
        failure=failure,
        reason=row.reason,
    )
