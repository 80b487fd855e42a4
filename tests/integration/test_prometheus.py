"""contrib/prometheus and contrib/grafana against real Prometheus (Debian's package).

promtool checks and unit-tests the rules; promtool lints a real /metrics scrape of the
daemon; a private Prometheus scrapes the daemon running canaries on the mail stack (an inbox
route, an always-spam route, a rejected one) with the rules loaded, and its HTTP API must
show the spam alert firing, nothing about the inbox route, and data for every expression of
the Grafana dashboard. The rules copy Prometheus loads has every `for:` cut to 2 s (the real
file keeps realistic durations); scrape and evaluation run every second.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitor.core.catalogue import KIND_ENTRIES
from monitor.core.models import Verdict
from monitor.harness.demo import write_config
from tests.integration.prometheus_support import MISSING, Prometheus, fast_rules, promtool
from tests.integration.support import REPO, Daemon, free_port, wait_for

pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

RULES = REPO / "contrib" / "prometheus" / "alerts.yml"
RULE_TESTS = RULES.with_name("alerts.test.yml")
DASHBOARD = REPO / "contrib" / "grafana" / "mailcanary.json"
# What Grafana would put in for "All" and for its interval macros on a 1 s scrape.
VARIABLES = {"instance": ".*", "route": ".*", "provider": ".*"}
MACROS = {"__rate_interval": "30s", "__interval": "5s", "__range": "1m"}


def test_rules_pass_promtool_and_every_rule_is_unit_tested(tmp_path: Path) -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert f"SUCCESS: {len(rules)} rules found" in promtool("check", "rules", str(RULES))
    assert "SUCCESS" in promtool("test", "rules", RULE_TESTS.name, cwd=RULES.parent)

    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert fired == {rule["alert"] for rule in rules if "alert" in rule}
    checked = {case["expr"] for test in tests for case in test.get("promql_expr_test", [])}
    assert checked == {rule["record"] for rule in rules if "record" in rule}
    for rule in rules:
        if "alert" in rule:
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            assert rule["labels"]["severity"] in ("warning", "critical")

    # The unit tests can fail: a wrong expectation in a copy is reported as such.
    (tmp_path / RULES.name).write_text(RULES.read_text())
    wrong = RULE_TESTS.read_text().replace("value: 546", "value: 500", 1)
    assert wrong != RULE_TESTS.read_text()
    (tmp_path / RULE_TESTS.name).write_text(wrong)
    with pytest.raises(pytest.fail.Exception, match="p90_1h"):
        promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel target, with variables and macros filled in."""
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((panel["title"], substitute(target["expr"])))
    return found


def substitute(expr: str) -> str:
    values = VARIABLES | MACROS

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"dashboard variable ${name} has no test value"
        return values[name]

    filled = re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)
    assert "$" not in filled, filled
    return filled


@dataclass
class Scene:
    daemon: Daemon
    metrics_url: str
    inbox: str
    spam: str
    rejected: str


@pytest.fixture(scope="module")
def scene(mailstack, tmp_path_factory) -> Iterator[Scene]:
    """The daemon on the mail stack, every 3 s; alerts go to a webhook nobody answers."""
    tmp = tmp_path_factory.mktemp("prom-daemon")
    suffix = random.randrange(10**6)  # the mailboxes are shared with other tests
    inbox, spam, rejected = f"to-inbox-{suffix}", f"to-spam-{suffix}", f"to-reject-{suffix}"
    routes = [
        (inbox, "alice", {"bob": Verdict.INBOX}),
        (spam, "alice", {"carol": Verdict.SPAM}),
        (rejected, "alice", {"reject": Verdict.SEND_FAILED}),
    ]
    port = free_port()
    monitor = (
        f'database = "sqlite:///{tmp}/mc.db"\nstate_dir = "{tmp}/state"\ninterval = "3s"\n'
        f'deadline = "15s"\npoll_interval = "2s"\nlisten = "127.0.0.1:{port}"\n'
    )
    path = write_config(mailstack, tmp, routes=routes, monitor=monitor)
    closed = free_port()  # nobody listens: every alert delivery fails
    path.write_text(
        path.read_text()
        + '\n[alerts]\nafter_failures = 2\nremind_every = "0"\n'
        + f'[[alerts.webhook]]\nname = "hook"\nurl = "http://127.0.0.1:{closed}/hook"\n'
    )
    daemon = Daemon(path, tmp / "daemon.log")
    try:
        daemon.start()
        yield Scene(daemon, f"http://127.0.0.1:{port}/metrics", inbox, spam, rejected)
    finally:
        daemon.stop()


def scrape(url: str) -> str:
    try:
        return httpx.get(url, timeout=5).text
    except httpx.TransportError:
        return ""


def families(text: str) -> set[str]:
    return {sample.name for f in text_string_to_metric_families(text) for sample in f.samples}


@pytest.mark.mailstack
def test_promtool_finds_nothing_to_say_about_a_real_scrape(scene: Scene) -> None:
    # Wait until every kind of series is there: a failure, an arrival, an alert, a delivery.
    wanted = {
        "mailcanary_probe_failures_total",
        "mailcanary_last_failure_info",
        "mailcanary_delivery_seconds_bucket",
        "mailcanary_alert_firing",
        "mailcanary_watcher_connected",
    }
    text = wait_for(
        lambda: (body := scrape(scene.metrics_url)) and wanted <= families(body) and body,
        90,
        f"a scrape with {sorted(wanted)}",
    )
    assert promtool("check", "metrics", stdin=text) == ""


@pytest.mark.mailstack
def test_prometheus_fires_spam_not_inbox_and_the_dashboard_has_data(scene, tmp_path) -> None:
    rules = fast_rules(RULES, tmp_path / "alerts-fast.yml", "2s")
    target = scene.metrics_url.removeprefix("http://").removesuffix("/metrics")
    prometheus = Prometheus(tmp_path, [target], rules)
    try:
        prometheus.start()

        def firing(alertname: str, **labels: str) -> list[dict[str, Any]]:
            return [
                alert
                for alert in prometheus.alerts()
                if alert["state"] == "firing"
                and alert["labels"]["alertname"] == alertname
                and labels.items() <= alert["labels"].items()
            ]

        wait_for(
            lambda: firing("MailcanaryCanaryInSpam", route=scene.spam, recipient="carol"),
            90,
            "MailcanaryCanaryInSpam firing for the spam route",
        )
        (failing,) = wait_for(
            lambda: firing("MailcanarySendFailing", route=scene.rejected),
            90,
            "MailcanarySendFailing firing for the rejected route",
        )
        wait_for(
            lambda: firing("MailcanaryAlertChannelFailing", channel="hook"),
            90,
            "MailcanaryAlertChannelFailing for the webhook nobody answers",
        )
        # The inbox route is known to Prometheus, in the inbox, and no alert names it.
        inbox = f'mailcanary_last_verdict{{route="{scene.inbox}",verdict="inbox"}} == 1'
        assert prometheus.query(inbox)
        about_inbox = [a for a in prometheus.alerts() if a["labels"].get("route") == scene.inbox]
        assert about_inbox == []
        assert not firing("MailcanaryCanaryInSpam", recipient="bob")

        # The failure of the moment and the catalogue's remedy reach the alert.
        labels = failing["labels"]
        assert (labels["kind"], labels["code"], labels["provider"]) == (
            "rejected",
            "550",
            "example.test",
        )
        (remedy,) = [e.says.remedy for e in KIND_ENTRIES if e.kinds == {"rejected"}]
        assert failing["annotations"]["description"].endswith(remedy)

        check_dashboard(prometheus, scene)
    finally:
        prometheus.stop()


def check_dashboard(prometheus: Prometheus, scene: Scene) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 10

    def empty() -> list[str]:
        lacking = []
        for title, expr in queries:
            values = [float(r["value"][1]) for r in prometheus.query(expr)]
            if not any(math.isfinite(v) for v in values):
                lacking.append(f"{title}: {expr}")
        return lacking

    # Rates need two scrapes and recording rules a round of evaluation: poll, then report.
    deadline = time.monotonic() + 60
    while (lacking := empty()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not lacking, "dashboard queries without data:\n" + "\n".join(lacking)

    variables = [v for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert {v["name"] for v in variables} == set(VARIABLES)
    for variable in variables:
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
        assert match, variable["query"]
        selector, label = substitute(match.group(1)), match.group(2)
        values = prometheus.api(f"label/{label}/values", **{"match[]": selector})
        assert values, f"variable {variable['name']}: no {label} values for {selector}"
        if label == "route":
            assert {scene.inbox, scene.spam, scene.rejected} <= set(values)
        if label == "provider":
            assert "example.test" in values  # the harness's accounts have no preset
