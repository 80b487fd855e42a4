"""The status page's pure parts: headline, grouping, chart geometry, password hashes, the
[web] table and the closed-hours cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config.load import ConfigError, load_config
from monitor.core.durations import format_duration
from monitor.core.models import Verdict
from monitor.reports.model import Histogram, Tally, bucket_of
from monitor.web import charts, model, reads
from monitor.web.cache import Windows
from monitor.web.security import Gate, check_password, hash_password

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def box(route: str, to: str, provider: str, verdict: Verdict | None) -> model.Mailbox:
    latest = None
    if verdict is not None:
        latest = model.Latest(route, to, 1, verdict, T0, 2.0, None, None)
    return model.Mailbox(route, "alice", to, provider, latest)


def test_headline_colour_and_reason() -> None:
    good = [box("r", "a", "gmail", Verdict.INBOX), box("r", "b", "gmx", Verdict.INBOX)]
    fine = Tally({Verdict.INBOX: 100})
    assert model.headline(good, fine, 0) == model.Headline(
        "green", "all 2 mailboxes got their newest canary in the inbox"
    )
    spam = [*good, box("r2", "c", "gmail", Verdict.SPAM)]
    assert model.headline(spam, fine, 0) == model.Headline(
        "amber", "1 of 3 in spam or late: c (r2)"
    )
    failing = [*spam, box("r3", "d", "gmx", Verdict.SEND_FAILED)]
    assert model.headline(failing, fine, 0).state == "red"
    assert model.headline(failing, fine, 0).reason == "1 of 4 failing: d (r3)"
    assert model.headline(good, fine, 2) == model.Headline("red", "2 alert(s) firing")
    poor_day = Tally({Verdict.INBOX: 90, Verdict.SPAM: 10})
    assert model.headline(good, poor_day, 0) == model.Headline(
        "amber", "90% of the last 24 h reached the inbox"
    )
    bad_day = Tally({Verdict.INBOX: 70, Verdict.MISSING: 30})
    assert model.headline(good, bad_day, 0).state == "red"
    waiting = [box("r", "a", "gmail", None)]
    assert model.headline(waiting, Tally(), 0) == model.Headline("amber", "no canary decided yet")
    assert model.headline([], Tally(), 0).state == "amber"
    assert model.inbox_now(spam) == pytest.approx(2 / 3)
    assert model.inbox_now(waiting) is None


def test_grid_groups_by_provider_worst_first() -> None:
    boxes = [
        box("r1", "a", "gmail", Verdict.INBOX),
        box("r1", "b", "gmx", Verdict.INBOX),
        box("r2", "c", "gmx", Verdict.MISSING),
        box("r1", "d", "gmail", Verdict.SPAM),
        box("r2", "e", "yahoo", None),
    ]
    day = {"a": Tally({Verdict.INBOX: 3}), "d": Tally({Verdict.SPAM: 1})}
    providers = model.group(boxes, day, {})
    assert [p.name for p in providers] == ["gmx", "gmail", "yahoo"]
    gmx = providers[0]
    assert [row.route for row in gmx.rows] == ["r2", "r1"]  # the missing one first
    gmail = providers[1]
    assert [c.recipient for c in gmail.rows[0].cells] == ["d", "a"]  # spam before inbox
    assert gmail.day == Tally({Verdict.INBOX: 3, Verdict.SPAM: 1})
    assert gmail.week.total == 0


def test_chart_geometry() -> None:
    bar = charts.stacked(Tally({Verdict.INBOX: 3, Verdict.SEND_FAILED: 1}))
    assert [(s.verdict, s.x, s.width, s.n) for s in bar] == [
        ("inbox", 0.0, 75.0, 3),
        ("send_failed", 75.0, 25.0, 1),
    ]
    assert charts.stacked(Tally()) == []

    hours = {T0: Tally({Verdict.INBOX: 2, Verdict.SPAM: 1})}
    cells = charts.strip(hours, T0 - timedelta(hours=1), 4, now=T0 + timedelta(minutes=30))
    assert [c.verdict for c in cells] == ["none", "spam", "future", "future"]
    assert cells[1].title == "Mon 02 Mar 12:00 UTC: 2 inbox, 1 spam"

    points = model.percentiles(
        {T0: Histogram.of([(bucket_of(4.0), 10, 4.0)]), T0 - timedelta(hours=1): Histogram()}
    )
    assert [p.n for p in points] == [0, 10]
    chart = charts.line_chart(points, T0 - timedelta(days=1), T0 + timedelta(hours=1))
    assert not chart.empty and len(chart.p50) == 1 and len(chart.p95) == 1
    x, y = chart.p95[0]
    assert chart.left < x < chart.width and 0 < y < chart.height
    # The top of the axis is the largest p95.
    assert chart.ticks[-1][1] == format_duration(points[-1].p95 or 0) == "4.0s"
    assert charts.line_chart([], T0, T0 + timedelta(days=7)).empty


def test_password_hash_and_gate() -> None:
    digest = hash_password("pässword", salt=b"0123456789abcdef")
    assert digest.startswith("scrypt$16384$8$1$") and "pässword" not in digest
    assert check_password("pässword", digest)
    assert not check_password("password", digest)
    assert not check_password("pässword", "scrypt$broken")
    assert hash_password("pässword") != hash_password("pässword")  # salted

    from pydantic import SecretStr

    from monitor.config.web_settings import WebSettings

    gate = Gate(WebSettings(auth="token", token=SecretStr("t0ken")))
    assert gate.allows("Bearer t0ken") and gate.allows("Bearer t0ken")  # second: remembered
    assert not gate.allows("Bearer t0ke") and not gate.allows(None)
    assert not gate.allows("Basic dDBrZW4=")
    assert Gate(WebSettings()).allows(None)


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None):
    path = tmp_path / "mailcanary.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env or {})


def test_web_table_and_public_url(tmp_path: Path) -> None:
    digest = hash_password("x", salt=b"s" * 16)
    (tmp_path / "hash").write_text(digest + "\n")
    cfg = load(
        tmp_path,
        '[monitor]\nlisten = "0.0.0.0:9842"\npublic_url = "https://canary.example.org/"\n'
        '[web]\nauth = "password"\nuser = "ops"\npassword_hash_file = "hash"\n',
    )
    assert cfg.monitor.public_url == "https://canary.example.org"
    assert cfg.web.auth == "password" and cfg.web.user == "ops"
    assert cfg.web.password_hash is not None
    assert cfg.web.password_hash.get_secret_value() == digest
    assert digest not in repr(cfg)

    token = load(
        tmp_path,
        '[monitor]\nlisten = "[::]:9842"\n[web]\nauth = "token"\ntoken_env = "WEB_TOKEN"\n',
        {"WEB_TOKEN": "abc"},
    )
    assert token.web.token is not None and token.web.token.get_secret_value() == "abc"
    # Loopback needs no auth; turning the page off keeps /metrics on any address.
    assert load(tmp_path, '[monitor]\nlisten = "localhost:9842"\n').web.enabled
    off = load(tmp_path, '[monitor]\nlisten = "0.0.0.0:9842"\n[web]\nenabled = false\n')
    assert not off.web.enabled
    assert not load(tmp_path, '[monitor]\nlisten = ""\n').web.enabled


def test_web_table_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            '[monitor]\nlisten = "0.0.0.0:9842"\npublic_url = "canary.example.org"\n',
        )
    assert caught.value.problems == [
        'monitor.public_url: must be an http(s) URL like "https://canary.example.org/", '
        'got "canary.example.org"',
        'web.auth: required when monitor.listen ("0.0.0.0:9842") is not a loopback address; '
        'set auth = "token" or "password", or enabled = false',
    ]
    (tmp_path / "plain").write_text("hunter2\n")
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            '[web]\nauth = "password"\npassword_hash_file = "plain"\n',
        )
    problems = caught.value.problems
    assert 'web.user: required with auth = "password"' in problems
    assert "web.password_hash: not a hash from `mailcanary web-password`" in problems
    assert not any("hunter2" in p for p in problems)
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, '[web]\nauth = "token"\ntoken_env = "NOPE"\n')
    assert caught.value.problems == ["web.token_env: environment variable NOPE is not set"]


def test_web_password_prints_a_hash_that_checks() -> None:
    from typer.testing import CliRunner

    from monitor.cli.app import app

    result = CliRunner().invoke(app, ["web-password"], input="s3cret pass\n")
    assert result.exit_code == 0
    digest = result.stdout.strip()
    assert check_password("s3cret pass", digest) and "s3cret" not in digest
    assert CliRunner().invoke(app, ["web-password"], input="\n").exit_code == 2


async def test_windows_are_kept_slid_and_refreshed_in_the_background() -> None:
    now = [0.0]
    windows = Windows(ttl=10, clock=lambda: now[0])
    reads: list[tuple[str, int, int]] = []
    h = [T0 + timedelta(hours=k) for k in range(30)]

    async def load(a: datetime, b: datetime) -> list[int]:
        reads.append(("load", h.index(a), h.index(b)))
        return list(range(h.index(a), h.index(b)))

    async def slide(kept: list[int], a0, b0, a: datetime, b: datetime) -> list[int]:
        reads.append(("slide", h.index(b0), h.index(b)))
        return [k for k in kept if k >= h.index(a)] + list(range(h.index(b0), h.index(b)))

    assert await windows.get("s", h[0], h[5], load, slide) == [0, 1, 2, 3, 4]
    assert await windows.get("s", h[0], h[5], load, slide) == [0, 1, 2, 3, 4]
    assert await windows.get("s", h[1], h[6], load, slide) == [1, 2, 3, 4, 5]
    assert reads == [("load", 0, 5), ("slide", 5, 6)]
    # Past the ttl the kept value is served and read in full behind the view's back.
    now[0] = 11
    assert await windows.get("s", h[1], h[6], load, slide) == [1, 2, 3, 4, 5]
    await windows.settle()
    assert reads[-1] == ("load", 1, 6)
    # Going back, or far ahead, is a full read.
    await windows.get("s", h[0], h[5], load, slide)
    await windows.get("s", h[20], h[25], load, slide)
    assert reads[-2:] == [("load", 0, 5), ("load", 20, 25)]


def test_tallies_add_and_subtract() -> None:
    one = {"a": Tally({Verdict.INBOX: 3, Verdict.SPAM: 1}), "b": Tally({Verdict.INBOX: 1})}
    other = {"a": Tally({Verdict.SPAM: 1}), "b": Tally({Verdict.INBOX: 1})}
    assert reads.minus(one, other) == {"a": Tally({Verdict.INBOX: 3})}
    assert reads.add(reads.minus(one, other), other) == one


async def test_newest_verdicts_follow_recorded_probes_and_reread_the_database() -> None:
    from monitor.core.models import Decision, PlannedProbe, ProbeRecord
    from monitor.web.newest import Newest

    reads: list[tuple[tuple[str, str], ...]] = []

    class Store:
        async def latest(self, pairs):
            reads.append(pairs)
            return [model.Latest("r", "a", 1, Verdict.INBOX, T0, 1.0, None, None)]

    def probe(probe_id: int, minutes: int, verdict: Verdict) -> ProbeRecord:
        at = T0 + timedelta(minutes=minutes)
        planned = PlannedProbe(f"t{probe_id}", "r", "alice", "a", at, at, at, "<m>")
        return ProbeRecord(probe_id, planned, "final", decision=Decision(verdict))

    now = [0.0]
    newest = Newest(reread=60, clock=lambda: now[0])
    pairs = [("r", "a"), ("r", "b")]
    assert [x.probe_id for x in await newest.get(Store(), pairs)] == [1]
    newest.record(probe(2, 5, Verdict.SPAM))
    newest.record(probe(0, -5, Verdict.LATE))  # an older canary decided late: not shown
    (shown,) = await newest.get(Store(), pairs)
    assert (shown.probe_id, shown.verdict) == (2, Verdict.SPAM)
    newest.record(probe(2, 5, Verdict.LATE))  # the shown one itself changed
    assert (await newest.get(Store(), pairs))[0].verdict is Verdict.LATE
    assert len(reads) == 1
    now[0] = 61  # a while without a read: the database again (other instances' verdicts)
    assert (await newest.get(Store(), pairs))[0].probe_id == 1
    await newest.get(Store(), pairs[:1])  # other pairs (a reload): read again
    assert len(reads) == 3
