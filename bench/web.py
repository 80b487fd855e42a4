"""How fast the status page answers over a large history (a benchmark, not a test).

    python bench/web.py --rows 10000000 --mailboxes 1000
    python bench/web.py --rows 10000000 --mailboxes 1000 \\
        --database postgresql://mc@127.0.0.1:5433/mc --reset

Fills a database migrated to head with N synthetic final probes (the generator of
bench/report.py: routes of three mailboxes at five providers, spam, failures, an outage; the
rollup triggers run on every insert as they do in the daemon), then renders the overview and
one route page 50 times each, as the daemon's handlers do (queries + template), and prints
the p50 / p95 server time of each, ending with one JSON line:
{"rows": N, "mailboxes": M, "database": "sqlite|postgresql", "overview_cold_p95_ms": …,
 "overview_warm_p95_ms": …, "route_cold_p95_ms": …, …}. Cold: every request reads the whole
week (as the first view after a start does); warm: the closed hours come from the page's
window cache (monitor/web/cache.py), the last two hours are read fresh; hourly: every request
is the first of a new hour, so the kept week slides by one hour.
`--keep DIR` leaves the SQLite file in DIR (to look at the pages: `--serve PORT`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import END, fill, pairs, probes, reset
from sqlalchemy.engine import make_url

from monitor.adapters.store import Store
from monitor.adapters.webstore import WebStore
from monitor.config.schema import Account, Config, Route
from monitor.web.app import Pages
from monitor.web.security import Gate
from monitor.web.views import Source

REQUESTS = 50


def config(mailboxes: list[tuple[str, str, str, str]]) -> Config:
    routes: dict[str, list[str]] = {}
    for route, to, _, _ in mailboxes:
        routes.setdefault(route, []).append(to)
    accounts = [Account(name="sender", email="canary@example.org", username="canary")]
    accounts += [
        Account(name=to, email=f"{to}@{domain}", provider=provider, username=to)
        for _, to, provider, domain in mailboxes
    ]
    return Config(
        path=Path("bench.toml"),
        accounts=accounts,
        routes=[Route(name=r, sender="sender", recipients=t) for r, t in routes.items()],
    )


async def timed(
    render: Callable[[], Awaitable[object]], before: Callable[[], None], count: int
) -> list[float]:
    await render()  # the first one warms the database's pages, as any view after the first
    seconds = []
    for _ in range(count):
        before()
        began = time.perf_counter()
        await render()
        seconds.append(time.perf_counter() - began)
    return seconds


def p95(seconds: list[float]) -> float:
    return statistics.quantiles(seconds, n=20)[-1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--database", help="a PostgreSQL or SQLite URL (default: a temp SQLite)")
    parser.add_argument("--interval", type=float, default=300.0, help="seconds between canaries")
    parser.add_argument("--reset", action="store_true", help="drop mailcanary's tables first")
    parser.add_argument("--reuse", action="store_true", help="the database is already filled")
    parser.add_argument("--keep", help="a directory for the SQLite file, kept afterwards")
    parser.add_argument("--cold", type=int, default=10, help="cold views to time (slow)")
    args = parser.parse_args()

    scratch = None
    url = args.database
    if url is None:
        folder = args.keep or tempfile.mkdtemp(prefix="mailcanary-bench-")
        scratch = None if args.keep else folder
        url = f"sqlite:///{folder}/web.db"
    backend = make_url(url).get_backend_name()
    backend = "postgresql" if backend == "postgres" else backend
    mailboxes = pairs(args.mailboxes)
    try:
        if args.reset:
            await reset(url)
        store = await Store.open(url)
        await store.upgrade()
        if not args.reuse:
            span = args.rows / len(mailboxes) * args.interval
            rows = probes(args.rows, span, mailboxes, 5, ["default"])
            await fill(url, rows, args.rows)
        cfg = config(mailboxes)
        clock = [END]
        source = Source(lambda: cfg, WebStore(store.engine), clock=lambda: clock[0])
        pages = Pages(source, lambda: Gate(cfg.web))
        route, recipient = mailboxes[0][0], mailboxes[0][1]

        async def overview() -> object:
            return await pages.overview(None)  # type: ignore[arg-type]

        async def route_page(who: str | None = None) -> object:
            request = type("Request", (), {"match_info": {"route": route, "recipient": who}})
            return await pages.route(request)  # type: ignore[arg-type]

        figures: dict[str, object] = {"rows": args.rows, "mailboxes": len(mailboxes)}
        figures["database"] = backend

        views = [0]

        def paced() -> None:
            # An open page refetches at most every 5 s and the newest verdicts are read
            # again every 60 s (between, the daemon's own verdicts keep them): 1 view in 12.
            views[0] += 1
            if views[0] % 12 == 0:
                source.newest.forget()

        def turn() -> None:
            paced()
            clock[0] += timedelta(hours=1)

        def cold() -> None:
            source.windows.clear()
            source.newest.forget()

        def rewind() -> None:
            clock[0] = END - timedelta(minutes=3)

        def back() -> None:
            source.windows.clear()
            clock[0] = END - timedelta(hours=REQUESTS + 2, minutes=3)

        # cold: every view reads the whole week (only the first view after a start does);
        # warm: the closed hours are kept; hourly: every view is the first of a new hour, so
        # the kept week is slid by one hour (the steady state of a page people keep open).
        for name, render in (
            ("overview", overview),
            ("route", route_page),
            ("mailbox", lambda: route_page(recipient)),
        ):
            for state, setup, before in (
                ("cold", rewind, cold),
                ("warm", rewind, paced),
                ("hourly", back, turn),
            ):
                setup()
                count = args.cold if state == "cold" else REQUESTS
                seconds = await timed(render, before, count)
                await source.windows.settle()
                median, high = statistics.median(seconds) * 1000, p95(seconds) * 1000
                print(
                    f"{name} ({state}): p50 {median:.0f} ms, p95 {high:.0f} ms "
                    f"over {count} requests"
                )
                figures[f"{name}_{state}_p95_ms"] = round(high, 1)
        await store.close()
        print(json.dumps(figures))
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
