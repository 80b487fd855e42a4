"""What the daemon exposes to Prometheus, kept in a private registry.

A private `CollectorRegistry`, never the process-global one: two daemons (or a test and a
daemon) in one process must not see each other's series.

Series (label values are config names, so cardinality is bounded by the config). Every
per-mailbox series carries `provider`: the recipient account's preset name, else the domain of
its address (`provider_of`); it depends on the recipient only, so it adds no series (and it
is left out of the label lists below).
- mailcanary_probes_total{route,recipient,verdict}: counts each probe once, by the verdict
  it was first given. A missing canary that turns up later changes the last-verdict gauges,
  not this counter, so a rate never counts one canary twice.
- mailcanary_delivery_seconds{route,recipient}: hand-off to arrival, for every canary that
  arrived (inbox, spam or late) and whose hand-off time is known. Buckets double from
  50 ms to ~27 min.
- mailcanary_last_verdict{route,recipient,verdict}: one-hot: 1 for the latest probe's
  verdict, 0 for the five others (every verdict is always present, so
  `mailcanary_last_verdict{verdict="spam"} == 1` is an alert rule and no series appears or
  vanishes when the verdict changes).
- mailcanary_last_verdict_timestamp_seconds{route,recipient}: when that verdict was reached.
- mailcanary_last_success_timestamp_seconds{route,recipient}: planned (sending) time of the
  newest canary that reached the inbox in time. Success is `inbox` only: spam, late and
  missing are exactly the failures this tool exists to catch. The planned time, not the
  arrival, because that is what the store can answer cheaply when seeding, and the two differ
  by a delivery time only. Absent until a first success is known.
- mailcanary_probe_failures_total{route,recipient,verdict,kind,code}: send_failed and
  check_failed probes by the failure's kind (the catalogue's classes) and SMTP code ("none"
  without a reply).
- mailcanary_last_failure_info{route,recipient,verdict,kind,code}: 1 while the
  latest probe of a pair failed, with its kind and code; absent otherwise (the one series per
  pair whose labels change, so rules can name the failure of the moment).
- mailcanary_failure_kind_info{kind,remedy}: constant 1, the catalogue's plain remedy per kind,
  for alert annotations to look up by the failure's kind (contrib/prometheus/alerts.yml).
- mailcanary_smtp_replies_total{phase,code}: every SMTP reply of every send, once (a session
  shared by a route's canaries counts its opening replies once).
- mailcanary_watcher_connected{account,provider}: 1 while the account's IMAP watcher is connected.
- mailcanary_scheduler_running: 1 while the scheduler runs.
- mailcanary_route_interval_seconds{route}, mailcanary_probe_deadline_seconds: the config's
  rhythm, so a rule can tell "no verdict for too long" without repeating the config.
- mailcanary_alert_deliveries_total{channel,result}: alert notifications by outcome (sent,
  failed: will retry, given_up).

Counters start at zero at each start (Prometheus' rate() handles resets), those of configured
pairs and channels before their first event (`configure`); the last-verdict and
last-success gauges are seeded from the database (`seed`) so they survive a restart.

- mailcanary_alert_firing{route,recipient,kind}: 1 while that alert fires, 0 for
  every other (route, recipient, kind) alerting has seen a canary of; read from the alerting
  service at scrape time (`watch_alerts`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.alerts.state import AlertState
from monitor.core.catalogue import KIND_ENTRIES
from monitor.core.models import Decision, PlannedProbe, ProbeRecord, SendOutcome, Verdict

if TYPE_CHECKING:
    from monitor.config.schema import Account, Config

# 0.05 s × 2^n up to ~1638 s: a local relay answers in under a second, a greylisting
# provider in many minutes; past the top bucket a canary is late or missing anyway.
DELIVERY_BUCKETS = tuple(0.05 * 2**n for n in range(16))

Key = tuple[str, str]  # (route, recipient)
DELIVERY_RESULTS = ("sent", "failed", "given_up")
UNKNOWN_PROVIDER = "unknown"  # a stored recipient the config no longer names


def provider_of(account: Account) -> str:
    """The account's preset name, else the domain of its address (lower case)."""
    if account.provider:
        return account.provider
    return account.email.rpartition("@")[2].lower() or UNKNOWN_PROVIDER


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("route", "recipient", "provider")
        self._probes = Counter(
            "mailcanary_probes",
            "Probes finished, by the verdict first given.",
            (*labels, "verdict"),
            registry=self.registry,
        )
        self._delivery = Histogram(
            "mailcanary_delivery_seconds",
            "Seconds from SMTP hand-off to arrival in the recipient's mailbox.",
            labels,
            buckets=DELIVERY_BUCKETS,
            registry=self.registry,
        )
        self._last_verdict = Gauge(
            "mailcanary_last_verdict",
            "1 for the verdict of the latest probe of a route and recipient, 0 for the others.",
            (*labels, "verdict"),
            registry=self.registry,
        )
        self._last_verdict_at = Gauge(
            "mailcanary_last_verdict_timestamp_seconds",
            "Unix time the latest probe of a route and recipient got its verdict.",
            labels,
            registry=self.registry,
        )
        self._last_success_at = Gauge(
            "mailcanary_last_success_timestamp_seconds",
            "Unix time the newest canary that reached the inbox in time was planned.",
            labels,
            registry=self.registry,
        )
        self._last_failure = Gauge(
            "mailcanary_last_failure_info",
            "The failure of the latest probe of a route and recipient (1 while it is the latest).",
            (*labels, "verdict", "kind", "code"),
            registry=self.registry,
        )
        self._failure_shown: dict[Key, tuple[str, ...]] = {}
        self._failures = Counter(
            "mailcanary_probe_failures",
            "Probes that failed to send or to look, by failure kind and SMTP reply code.",
            (*labels, "verdict", "kind", "code"),
            registry=self.registry,
        )
        kinds = Gauge(
            "mailcanary_failure_kind_info",
            "The catalogue's plain remedy for each failure kind (always 1).",
            ("kind", "remedy"),
            registry=self.registry,
        )
        for known in KIND_ENTRIES:
            for kind in sorted(known.kinds or ()):
                kinds.labels(kind, known.says.remedy).set(1)
        self._replies = Counter(
            "mailcanary_smtp_replies",
            "SMTP replies received, by protocol phase and reply code.",
            ("phase", "code"),
            registry=self.registry,
        )
        self._scheduler = Gauge(
            "mailcanary_scheduler_running",
            "1 while the probe scheduler is running.",
            registry=self.registry,
        )
        self._intervals = Gauge(
            "mailcanary_route_interval_seconds",
            "Seconds between two canaries of a route, as configured.",
            ("route",),
            registry=self.registry,
        )
        self._deadline = Gauge(
            "mailcanary_probe_deadline_seconds",
            "Seconds a canary may take to arrive before it is called missing, as configured.",
            registry=self.registry,
        )
        self._deliveries = Counter(
            "mailcanary_alert_deliveries",
            "Alert notifications by channel and result (sent, failed: will retry, given_up).",
            ("channel", "result"),
            registry=self.registry,
        )
        self.providers: dict[str, str] = {}  # account name -> provider label
        self._watchers = _WatcherCollector(self.provider)
        self.registry.register(self._watchers)
        self._alerts = _AlertCollector(self.provider)
        self.registry.register(self._alerts)
        # Planned times of the probes the gauges show, so an older record never overwrites.
        self._latest: dict[Key, datetime] = {}
        self._shown: dict[Key, ProbeRecord] = {}  # the record the last-verdict gauges show
        self._latest_success: dict[Key, datetime] = {}

    def configure(self, cfg: Config) -> None:
        """Providers and rhythm from the config; call again after a reload."""
        before = self.providers
        self.providers = {account.name: provider_of(account) for account in cfg.accounts}
        for key in self._shown.keys() | self._latest_success.keys():
            old = before.get(key[1], UNKNOWN_PROVIDER)
            if old != self.provider(key[1]):
                self._relabel(key, old)
        self._intervals.clear()
        for route in cfg.routes:
            self._intervals.labels(route.name).set(route.interval)
        self._deadline.set(cfg.monitor.deadline)
        # Known series from the start, so rate() and increase() see the first event too.
        for route in cfg.routes:
            for recipient in route.recipients:
                for verdict in Verdict:
                    self._probes.labels(route.name, recipient, self.provider(recipient), verdict)
        for channel in cfg.alerts.channels:
            for result in DELIVERY_RESULTS:
                self._deliveries.labels(channel.name, result)

    def provider(self, account: str) -> str:
        return self.providers.get(account, UNKNOWN_PROVIDER)

    # -- probes ---------------------------------------------------------------------------

    def probe_finished(self, record: ProbeRecord) -> None:
        """A probe got its final verdict in this process: count it and update the gauges."""
        decision = record.decision
        if decision is None:
            return
        key = _key(record.planned)
        labels = (*key, self.provider(key[1]))
        self._probes.labels(*labels, decision.verdict.value).inc()
        if decision.delivery_seconds is not None and decision.arrived_at is not None:
            self._delivery.labels(*labels).observe(max(decision.delivery_seconds, 0.0))
        failure = _failure_labels(decision)
        if failure is not None:
            self._failures.labels(*labels, *failure).inc()
        self._show(record)

    def probe_revised(self, record: ProbeRecord) -> None:
        """A verdict changed after the fact (a missing canary arrived): gauges only."""
        self._show(record)

    def seed(self, records: Iterable[ProbeRecord]) -> None:
        """Restore the last-verdict and last-success gauges from stored records (any order).

        Give it enough history to contain each route's last success, not only its last probe.
        """
        for record in sorted(records, key=lambda r: r.planned.planned_at):
            self._show(record)

    def seed_success(self, route: str, recipient: str, planned_at: datetime | None) -> None:
        """Restore a last success known only by its planned time (`Store.latest_per_pair`)."""
        if planned_at is not None:
            self._success((route, recipient), planned_at)

    def on_progress(self, planned: PlannedProbe, stage: str, record: ProbeRecord | None) -> None:
        """A `ProbeRunner` progress callback: all the probe metrics from the runner's events."""
        if record is None:
            return
        if stage == "watching" and record.send is not None:
            self.smtp_replies(record.send)
        elif stage == "final":
            # A failed send goes straight to final; a good one was counted at "watching".
            if record.send is not None and not record.send.ok:
                self.smtp_replies(record.send)
            self.probe_finished(record)
        elif stage == "late":
            self.probe_revised(record)

    def _show(self, record: ProbeRecord) -> None:
        decision = record.decision
        if decision is None:
            return
        key = _key(record.planned)
        labels = (*key, self.provider(key[1]))
        planned_at = record.planned.planned_at
        if planned_at >= self._latest.get(key, planned_at):
            self._latest[key] = planned_at
            self._shown[key] = record
            for verdict in Verdict:
                self._last_verdict.labels(*labels, verdict.value).set(
                    1 if verdict is decision.verdict else 0
                )
            reached = record.finished_at or decision.arrived_at or planned_at
            self._last_verdict_at.labels(*labels).set(reached.timestamp())
            self._show_failure(key, labels, decision)
        if decision.verdict is Verdict.INBOX:
            self._success(key, planned_at)

    def _relabel(self, key: Key, old: str) -> None:
        """The recipient's provider changed: move its gauges, or the old ones would stay on."""
        stale = (*key, old)
        for verdict in Verdict:
            self._last_verdict.remove(*stale, verdict.value)
        self._last_verdict_at.remove(*stale)
        self._last_success_at.remove(*stale)
        shown_failure = self._failure_shown.pop(key, None)
        if shown_failure is not None:
            self._last_failure.remove(*shown_failure)
        record = self._shown.pop(key, None)
        success = self._latest_success.pop(key, None)
        self._latest.pop(key, None)
        if record is not None:
            self._show(record)
        if success is not None:
            self._success(key, success)

    def _show_failure(self, key: Key, labels: tuple[str, ...], decision: Decision) -> None:
        failure = _failure_labels(decision)
        now = (*labels, *failure) if failure is not None else None
        shown = self._failure_shown.pop(key, None)
        if shown is not None and shown != now:
            self._last_failure.remove(*shown)
        if now is not None:
            self._last_failure.labels(*now).set(1)
            self._failure_shown[key] = now

    def _success(self, key: Key, planned_at: datetime) -> None:
        if planned_at >= self._latest_success.get(key, planned_at):
            self._latest_success[key] = planned_at
            self._last_success_at.labels(*key, self.provider(key[1])).set(planned_at.timestamp())

    # -- sending, watching, scheduling -----------------------------------------------------

    def smtp_replies(self, outcome: SendOutcome) -> None:
        for reply in outcome.replies:
            if reply.shared:  # counted with the canary that opened the session
                continue
            self._replies.labels(reply.phase.value, str(reply.code)).inc()

    def alert_delivery(self, channel: str, result: str) -> None:
        """An alert notification was sent, failed (to be retried) or given up."""
        self._deliveries.labels(channel, result).inc()

    def watcher_state(self, account: str, connected: bool) -> None:
        self._watchers.states[account] = connected

    def watch_watchers(self, source: Callable[[], Mapping[str, bool]]) -> None:
        """Read watcher states at scrape time instead (e.g. from `runner.watchers`)."""
        self._watchers.source = source

    def watch_alerts(self, source: Callable[[], Iterable[AlertState]]) -> None:
        """Alert states, read at scrape time (e.g. `Alerting.states`)."""
        self._alerts.source = source

    def scheduler_running(self, running: bool) -> None:
        self._scheduler.set(1 if running else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _WatcherCollector(Collector):
    """Watcher states are read when scraped, so a state is never stale between events."""

    def __init__(self, provider: Callable[[str], str]) -> None:
        self.states: dict[str, bool] = {}
        self.source: Callable[[], Mapping[str, bool]] | None = None
        self.provider = provider

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "mailcanary_watcher_connected",
            "1 while the account's IMAP watcher is connected and watching.",
            labels=("account", "provider"),
        )
        states = dict(self.states)
        if self.source is not None:
            states.update(self.source())
        for account, connected in sorted(states.items()):
            family.add_metric((account, self.provider(account)), 1 if connected else 0)
        yield family


class _AlertCollector(Collector):
    def __init__(self, provider: Callable[[str], str]) -> None:
        self.source: Callable[[], Iterable[AlertState]] | None = None
        self.provider = provider

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "mailcanary_alert_firing",
            "1 while the alert of a route, recipient and kind is firing.",
            labels=("route", "recipient", "provider", "kind"),
        )
        states = list(self.source()) if self.source is not None else []
        for state in sorted(states, key=lambda s: s.key):
            labels = (state.route, state.recipient, self.provider(state.recipient))
            family.add_metric((*labels, state.kind.value), int(state.open))
        yield family


def _failure_labels(decision: Decision) -> tuple[str, str, str] | None:
    """(verdict, kind, code) of a failed probe; code "none" when no SMTP reply carried it."""
    failure = decision.failure
    if failure is None or decision.verdict not in (Verdict.SEND_FAILED, Verdict.CHECK_FAILED):
        return None
    code = str(failure.code) if failure.code is not None else "none"
    return decision.verdict.value, failure.kind, code


def _key(planned: PlannedProbe) -> Key:
    return (planned.route, planned.recipient)
