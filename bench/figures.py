"""The figures bench/scale.py prints: from the daemon's database, its log and the Maildir.

Planned / finished / dropped, schedule lag (planned_at after the scheduler's own fire time),
detection lag (the message file's mtime in the Maildir → verdict), delivery time, CPU and RSS.
"""

from __future__ import annotations

import email
import json
import os
import re
from collections import Counter
from datetime import UTC, datetime
from email.policy import default
from pathlib import Path
from typing import Any

from monitor.core.canary import TOKEN_HEADER
from monitor.core.models import Verdict
from monitor.harness.mailstack import MailStack

CLK_TCK = os.sysconf("SC_CLK_TCK")

Routes = list[tuple[str, str, dict[str, Verdict]]]


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 3)


def proc_stats(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) and peak RSS in MB of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
    return cpu, hwm / 1024


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip().replace(" ", "T"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def scheduled_runs(noted: Path) -> dict[str, list[datetime]]:
    """route → the scheduled times of its runs, from the lines `route<TAB>time` the bench's
    scheduler listener wrote (bench/scale.py run_daemon)."""
    runs: dict[str, list[datetime]] = {}
    text = noted.read_text(errors="replace") if noted.exists() else ""
    for line in text.splitlines():
        route, _, at = line.partition("\t")
        if at:
            runs.setdefault(route, []).append(parse_time(at))
    return runs


def arrivals(stack: MailStack, users: list[str]) -> dict[str, float]:
    """token → mtime of its Maildir file: when Dovecot finished writing it (ns precision)."""
    found: dict[str, float] = {}
    for user in users:
        maildir = stack.root / "mail" / user / "Maildir"
        for path in maildir.glob("**/cur/*") if maildir.exists() else []:
            found.update(_token_of(path))
        for path in maildir.glob("**/new/*") if maildir.exists() else []:
            found.update(_token_of(path))
    return found


def _token_of(path: Path) -> dict[str, float]:
    try:
        with path.open("rb") as handle:
            headers = email.message_from_binary_file(handle, policy=default)
            token = headers[TOKEN_HEADER]
            return {str(token): path.stat().st_mtime} if token else {}
    except OSError:
        return {}


def measure(
    rows: list[tuple[Any, ...]],
    stack: MailStack,
    users: list[str],
    routes: Routes,
    runs: dict[str, list[datetime]],
    started: datetime,
    stopped: datetime,
    interval: float,
) -> dict[str, object]:
    landed = arrivals(stack, users)
    # Slots wholly inside the run, after one interval to start: each must have its canary.
    first = started.timestamp() + interval
    last = stopped.timestamp() - interval
    window = [s for s in range(int(first // interval) + 1, int(last // interval)) if s]
    # Canaries per (route, slot): each route owes one per recipient in every slot.
    claimed = Counter((r[0], int(parse_time(r[2]).timestamp() // interval)) for r in rows)
    unclaimed = sum(max(len(to) - claimed[(name, s)], 0) for name, _, to in routes for s in window)
    # A claimed slot whose canary never left (its task died) is dropped too.
    stuck = sum(r[4] in ("planned", "sending") for r in rows)
    dropped = unclaimed + stuck
    schedule, detection, watcher, judged, delivery = [], [], [], [], []
    for route, token, _slot, planned_at, state, detected_at, finished_at, seconds, *_ in rows:
        planned = parse_time(planned_at)
        due = [at for at in runs.get(route, []) if at <= planned]
        if due:
            schedule.append((planned - max(due)).total_seconds())
        if state == "final" and token in landed and finished_at:
            detection.append(parse_time(finished_at).timestamp() - landed[token])
            if detected_at:
                seen = parse_time(detected_at)
                watcher.append(seen.timestamp() - landed[token])
                judged.append((parse_time(finished_at) - seen).total_seconds())
        if seconds is not None:
            delivery.append(seconds)
    verdicts: dict[str, int] = {}
    for row in rows:
        verdicts[row[8] or row[4]] = verdicts.get(row[8] or row[4], 0) + 1
    return {
        "planned": len(rows),
        "finished": sum(r[4] == "final" for r in rows),
        "dropped": dropped,
        "dropped_detail": {"unclaimed_slots": unclaimed, "never_sent": stuck},
        "verdicts": verdicts,
        "schedule_lag_p50": percentile(schedule, 50),
        "schedule_lag_p99": percentile(schedule, 99),
        "detection_lag_p50": percentile(detection, 50),
        "detection_lag_p95": percentile(detection, 95),
        "sighting_lag_p95": percentile(watcher, 95),
        "verdict_after_sighting_p95": percentile(judged, 95),
        "delivery_p50": percentile(delivery, 50),
        "lag_samples": len(schedule),
    }


def report(f: dict[str, object]) -> None:
    print(f"mailboxes            {f['mailboxes']} ({f['recipients_per_route']} per route)")
    print(f"probes               planned {f['planned']}  finished {f['finished']}", end="")
    print(f"  dropped {f['dropped']} {f['dropped_detail']}  verdicts {f['verdicts']}")
    first = (
        "counted"
        if f["first_slot_kept"]
        else f"not counted: {f['first_slot_routes']} of {f['routes']} routes fitted in it"
    )
    print(f"slots planned        {f['slots_planned']} / {f['slots_expected']} expected", end="")
    print(
        f" ({f['slots_covered']} slots; started {f['start_into_slot']} s into the first, {first})"
    )
    print(f"schedule lag         p50 {f['schedule_lag_p50']} s  p99 {f['schedule_lag_p99']} s")
    print(
        f"detection lag        p50 {f['detection_lag_p50']} s  p95 {f['detection_lag_p95']} s"
        f"  (seen by the watcher: p95 {f['sighting_lag_p95']} s; sighting → verdict"
        f" p95 {f['verdict_after_sighting_p95']} s)"
    )
    print(f"delivery time        p50 {f['delivery_p50']} s")
    print(f"daemon CPU           {f['cpu_seconds']} s, {f['cpu_cores']} cores", end="")
    print(f", {f['cpu_seconds_per_probe']} s per probe", end="")
    print(f" ({f.get('cpu_steady_per_probe')} s per probe after start-up)")
    print(f"peak RSS             {f['peak_rss_mb']} MB")
    keys = (
        "mailboxes planned finished dropped slots_planned slots_expected schedule_lag_p99"
        " detection_lag_p95 delivery_p50 cpu_seconds_per_probe cpu_steady_per_probe peak_rss_mb"
    ).split()
    print(json.dumps({key: f.get(key) for key in keys}))
