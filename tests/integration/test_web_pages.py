"""The status page over a real socket and a real SQLite store, without a browser: what is
served, to whom, and that server-supplied text stays text."""

from __future__ import annotations

import asyncio
import base64
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from monitor.adapters.leases import SharedWork
from monitor.adapters.store import Store
from monitor.adapters.webstore import WebStore
from monitor.config.schema import Account, Config, Route
from monitor.config.web_settings import WebSettings
from monitor.core.models import (
    Decision,
    Failure,
    Phase,
    PlannedProbe,
    SendOutcome,
    SmtpReply,
    Verdict,
)
from monitor.daemon import http
from monitor.daemon.metrics import Metrics
from monitor.web.app import Pages
from monitor.web.security import Gate, hash_password
from monitor.web.views import Source

EVIL = '<script>alert("owned")</script>'
NOW = datetime.now(UTC)


def config(web: WebSettings) -> Config:
    return Config(
        path=Path("t.toml"),
        web=web,
        accounts=[
            Account(name="alice", email="alice@example.test", username="alice"),
            Account(name="bob", email="bob@example.test", provider="gmail", username="bob"),
        ],
        routes=[Route(name="r1", sender="alice", recipients=["bob"])],
    )


async def refused_probe(store: Store) -> int:
    planned = PlannedProbe(
        token="t1",
        route="r1",
        sender="alice",
        recipient="bob",
        slot=NOW - timedelta(minutes=5),
        planned_at=NOW - timedelta(minutes=5),
        deadline_at=NOW + timedelta(minutes=5),
        message_id="<1@example.test>",
    )
    probe_id = await store.plan(planned)
    failure = Failure("rejected", Phase.RCPT_TO, False, f"5.7.1 {EVIL}", 550, "5.7.1")
    replies = (
        SmtpReply(Phase.GREETING, 220, None, "mx ready", shared=True),  # another's session
        SmtpReply(Phase.RCPT_TO, 550, "5.7.1", EVIL),
    )
    await store.record_send(probe_id, SendOutcome(Phase.RCPT_TO, replies, failure))
    await store.finish(probe_id, Decision(Verdict.SEND_FAILED, failure=failure))
    return probe_id


@pytest.fixture
async def site(tmp_path) -> AsyncIterator[tuple[int, int, dict[str, WebSettings]]]:
    store = await Store.open(f"sqlite:///{tmp_path}/mc.db")
    await store.upgrade()
    probe_id = await refused_probe(store)
    current = {"web": WebSettings()}
    source = Source(lambda: config(current["web"]), WebStore(store.engine))
    pages = Pages(source, lambda: Gate(current["web"]))
    server = await http.serve("127.0.0.1:0", Metrics(), lambda: (True, {}), pages=pages.install)
    try:
        yield server.port, probe_id, current
    finally:
        await server.close()
        await store.close()


async def fetch(
    port: int, path: str, method: str = "GET", auth: str | None = None
) -> tuple[int, dict[str, str], str]:
    def run() -> tuple[int, dict[str, str], str]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
        if auth:
            request.add_header("Authorization", auth)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, dict(answer.headers), answer.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read().decode()

    return await asyncio.to_thread(run)


async def test_pages_escape_server_text_and_send_strict_headers(site) -> None:
    port, probe_id, _ = site
    for path in ("/", "/route/r1", "/route/r1/bob", f"/probe/{probe_id}"):
        status, headers, body = await fetch(port, path)
        assert status == 200, path
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert EVIL not in body, path
        # The only script is the one file the page loads; none is inline.
        assert body.count("<script") == 1 and '<script src="/static/live.js" defer>' in body
    _, _, probe = await fetch(port, f"/probe/{probe_id}")
    assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in probe
    assert ">rcpt to<" in probe and "550 5.7.1" in probe
    # The shared reply came back from the store as such, and the page says what that means.
    assert '>greeting <span class="muted">shared</span><' in probe
    assert "session opened for another canary" in probe
    _, _, overview = await fetch(port, "/")
    assert 'data-recipient="bob" data-verdict="send_failed"' in overview
    assert f'href="/probe/{probe_id}"' in overview


async def test_read_only_and_unknown_pages(site) -> None:
    port, _, _ = site
    for method in ("POST", "PUT", "DELETE"):
        status, headers, _ = await fetch(port, "/", method)
        assert status == 405 and headers["Allow"] == "GET,HEAD"
    status, _, body = await fetch(port, "/", "HEAD")
    assert (status, body) == (200, "")
    assert (await fetch(port, "/probe/999999"))[0] == 404
    assert (await fetch(port, "/route/nowhere"))[0] == 404
    assert (await fetch(port, "/static/../web.css"))[0] == 404
    status, headers, body = await fetch(port, "/events", "HEAD")  # answered, not streamed
    assert (status, headers["Content-Type"], body) == (200, "text/event-stream", "")
    status, headers, _ = await fetch(port, "/static/live.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")


async def test_token_and_password_auth_guard_pages_but_not_metrics(site) -> None:
    port, _, current = site
    current["web"] = WebSettings(auth="token", token=SecretStr("s3cret-token"))
    status, headers, _ = await fetch(port, "/")
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
    assert (await fetch(port, "/", auth="Bearer wrong"))[0] == 401
    assert (await fetch(port, "/", auth="Bearer s3cret-token"))[0] == 200
    assert (await fetch(port, "/healthz"))[0] == 200
    assert (await fetch(port, "/metrics"))[0] == 200

    digest = hash_password("correct horse")
    current["web"] = WebSettings(auth="password", user="ops", password_hash=SecretStr(digest))

    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    status, headers, _ = await fetch(port, "/events")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    assert (await fetch(port, "/", auth=basic("ops", "wrong")))[0] == 401
    assert (await fetch(port, "/", auth=basic("eve", "correct horse")))[0] == 401
    status, _, body = await fetch(port, "/", auth=basic("ops", "correct horse"))
    assert status == 200 and digest not in body


async def overview_of(store: Store, cfg: Config) -> tuple[int, str]:
    """The overview page as a browser gets it; the store is closed afterwards."""
    source = Source(lambda: cfg, WebStore(store.engine))
    pages = Pages(source, lambda: Gate(cfg.web))
    server = await http.serve("127.0.0.1:0", Metrics(), lambda: (True, {}), pages=pages.install)
    try:
        status, _, body = await fetch(server.port, "/")
    finally:
        await server.close()
        await store.close()
    return status, body


async def test_the_overview_shows_who_watches_each_mailbox_on_a_shared_database(postgres) -> None:
    store = await Store.open(postgres.create_database())
    await store.upgrade()
    work = SharedWork(store.engine, 30.0)
    await work.heartbeat("eu-1", first=True)
    await work.heartbeat("us-1", first=True)
    assert await work.acquire("eu-1", take={"bob"}, renew=()) == {"bob"}
    status, body = await overview_of(store, config(WebSettings()))
    assert status == 200
    assert "watched by eu-1" in body
    assert 'data-instance="eu-1"' in body and "watches 1 mailbox<" in body
    assert 'data-instance="us-1"' in body and "watches 0 mailboxes" in body


async def judged_probe(store: Store, route: str, verdict: Verdict) -> None:
    planned = PlannedProbe(
        token=f"t-{route}",
        route=route,
        sender="alice",
        recipient="bob",
        slot=NOW - timedelta(minutes=5),
        planned_at=NOW - timedelta(minutes=5),
        deadline_at=NOW + timedelta(minutes=5),
        message_id=f"<{route}@example.test>",
    )
    probe_id = await store.plan(planned)
    sent = SendOutcome(Phase.DONE, (SmtpReply(Phase.DATA, 250, "2.0.0", "queued"),))
    await store.record_send(probe_id, sent)
    await store.finish(probe_id, Decision(verdict, folder="INBOX"))


async def test_the_overview_says_whether_it_is_the_content_or_the_sender(tmp_path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path}/mc.db")
    await store.upgrade()
    await judged_probe(store, "plain", Verdict.INBOX)
    await judged_probe(store, "news", Verdict.SPAM)
    cfg = config(WebSettings()).model_copy(
        update={
            "routes": [
                Route(name="plain", sender="alice", recipients=["bob"]),
                Route(name="news", sender="alice", recipients=["bob"], message=tmp_path / "n.eml"),
            ]
        }
    )
    status, body = await overview_of(store, cfg)
    assert status == 200
    assert 'data-judgement="content"' in body
    assert "It is the content: news (your message) from alice goes to spam at bob" in body
