"""The provider label and the config-derived series of /metrics, from a real config file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from monitor.config.load import load_config
from monitor.core.models import Decision, Failure, Phase, PlannedProbe, ProbeRecord, Verdict
from monitor.daemon.metrics import Metrics, provider_of

CONFIG = """
[monitor]
interval = "5m"
deadline = "10m"

[[accounts]]
name = "sender"
email = "ops@Example.ORG"
password_env = "PW"
smtp = { host = "mail.example.org", port = 587, security = "starttls" }

[[accounts]]
name = "gm"
email = "canary@gmail.com"
provider = "gmail"
password_env = "PW"

[[accounts]]
name = "corp"
email = "canary@Corp.Example"
password_env = "PW"
imap = { host = "imap.corp.example", port = 993, security = "tls" }

[[routes]]
name = "out"
from = "sender"
to = ["gm", "corp"]
interval = "2m"
"""


def test_provider_is_the_preset_else_the_domain_and_the_rhythm_is_exposed(tmp_path: Path) -> None:
    path = tmp_path / "mailcanary.toml"
    path.write_text(CONFIG)
    cfg = load_config(path, env={"PW": "x"})
    assert [provider_of(a) for a in cfg.accounts] == ["example.org", "gmail", "corp.example"]

    metrics = Metrics()
    metrics.configure(cfg)
    metrics.watcher_state("gm", True)
    metrics.watcher_state("gone", False)  # an account the config no longer names
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }
    assert samples[("mailcanary_route_interval_seconds", (("route", "out"),))] == 120
    assert samples[("mailcanary_probe_deadline_seconds", ())] == 600
    # Every verdict of every configured pair counts from zero, so rate() sees the first one.
    pair = (("provider", "gmail"), ("recipient", "gm"), ("route", "out"))
    for verdict in ("inbox", "spam", "missing", "late", "send_failed", "check_failed"):
        assert samples[("mailcanary_probes_total", (*pair, ("verdict", verdict)))] == 0
    connected = "mailcanary_watcher_connected"
    assert samples[(connected, (("account", "gm"), ("provider", "gmail")))] == 1
    assert samples[(connected, (("account", "gone"), ("provider", "unknown")))] == 0


def _final(route: str, recipient: str, verdict: Verdict, failure: Failure | None = None):
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    planned = PlannedProbe(
        f"t-{route}-{recipient}", route, "sender", recipient, at, at, at, f"<{recipient}@t>"
    )
    return ProbeRecord(1, planned, "final", None, None, Decision(verdict, failure=failure), at)


def _series(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
        if s.name == name
    }


def test_a_changed_provider_moves_the_gauges_instead_of_leaving_stale_ones(tmp_path: Path) -> None:
    path = tmp_path / "mailcanary.toml"
    path.write_text(CONFIG)
    metrics = Metrics()
    metrics.configure(load_config(path, env={"PW": "x"}))
    refused = Failure("auth_failed", Phase.AUTH, False, "no", 535, "5.7.8")
    metrics.probe_finished(_final("out", "corp", Verdict.SEND_FAILED, refused))
    metrics.probe_finished(_final("out", "gm", Verdict.INBOX))

    # corp's address moves to another domain; SIGHUP re-reads the config.
    path.write_text(CONFIG.replace('email = "canary@Corp.Example"', 'email = "c@x.example"'))
    metrics.configure(load_config(path, env={"PW": "x"}))

    corp = (("provider", "x.example"), ("recipient", "corp"), ("route", "out"))
    verdicts = _series(metrics, "mailcanary_last_verdict")
    assert {dict(k)["provider"] for k in verdicts if dict(k)["recipient"] == "corp"} == {
        "x.example"
    }
    assert verdicts[(*corp, ("verdict", "send_failed"))] == 1
    assert _series(metrics, "mailcanary_last_failure_info") == {
        (("code", "535"), ("kind", "auth_failed"), *corp, ("verdict", "send_failed")): 1
    }
    successes = _series(metrics, "mailcanary_last_success_timestamp_seconds")
    assert [dict(k)["provider"] for k in successes] == ["gmail"]  # gm did not change
