"""The status page in headless Chromium, served by the real daemon probing the harness.

Canaries that land in the inbox and in spam, a 550 refusal, a wrong password and a server
whose refusal carries markup; the page must show each verdict in its cell, lead to the
probe's SMTP replies, pick up new canaries by itself, fit a 400 px screen and keep the
browser console clean. Screenshots go to var/screenshots/ (MAILCANARY_SCREENSHOTS overrides).
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from monitor.core.models import Verdict
from monitor.harness.demo import write_config
from monitor.web.views import ARRIVAL
from tests.integration.support import REPO, free_port, rows, wait_for

pytestmark = pytest.mark.mailstack

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
EVIL = '<script>document.title="owned"</script>'
ROUTES = [
    ("to-inboxes", "alice", {"bob": Verdict.INBOX, "vetted": Verdict.INBOX}),
    ("to-spam", "alice", {"carol": Verdict.SPAM}),
    ("trouble", "alice", {"reject": Verdict.SEND_FAILED}),
    ("wrong-password", "mallory", {"bob": Verdict.SEND_FAILED}),
]
SHOTS = Path(os.environ.get("MAILCANARY_SCREENSHOTS", REPO / "var" / "screenshots"))


class Refuser:
    """An SMTP server that takes any login and refuses every recipient with markup."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        return f"550 5.7.1 {EVIL}"


@pytest.fixture
def refusing_server(tmp_path) -> Iterator[tuple[int, Path]]:
    ca = trustme.CA()
    ca_file = tmp_path / "refuser-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    controller = Controller(
        Refuser(),
        hostname="127.0.0.1",
        port=free_port(),
        ssl_context=context,
        authenticator=lambda *args: AuthResult(success=True),
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield controller.port, ca_file
    finally:
        controller.stop()


@pytest.fixture
def browser() -> Iterator[object]:
    if not (shutil.which(CHROMIUM) and shutil.which(DRIVER)):
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(flag)
    options.add_argument("--window-size=1920,1200")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def config(mailstack, tmp_path: Path, port: int, refuser: tuple[int, Path]) -> Path:
    monitor = (
        f'database = "sqlite:///{tmp_path}/mc.db"\nstate_dir = "{tmp_path}/state"\n'
        f'interval = "6s"\ndeadline = "20s"\npoll_interval = "2s"\nlisten = "127.0.0.1:{port}"\n'
    )
    path = write_config(mailstack, tmp_path, routes=ROUTES, monitor=monitor)
    refuser_port, ca_file = refuser
    secret = tmp_path / "secrets" / "alice"
    path.write_text(
        path.read_text() + '\n[[accounts]]\nname = "strict"\nemail = "alice@example.test"\n'
        f'password_file = "{secret}"\nca_file = "{ca_file}"\n'
        f'smtp = {{ host = "127.0.0.1", port = {refuser_port}, security = "tls" }}\n'
        '\n[[routes]]\nname = "markup"\nfrom = "strict"\nto = ["bob"]\n'
    )
    return path


def cell(driver, route: str, recipient: str):
    from selenium.webdriver.common.by import By

    selector = f'.cell[data-route="{route}"][data-recipient="{recipient}"]'
    return driver.find_element(By.CSS_SELECTOR, selector)


def newest(driver, route: str, recipient: str) -> int:
    """The probe id the mailbox's cell links to (0 while it has none)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        link = cell(driver, route, recipient).find_element(By.CSS_SELECTOR, "a.what")
        return int(link.get_attribute("href").rsplit("/", 1)[1])
    except (NoSuchElementException, StaleElementReferenceException):
        return 0  # not there yet, or swapped out by a live update while we looked


def fits(driver) -> bool:
    return driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


def shoot(driver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(max(height + 140, 600), 6000))
    driver.save_screenshot(str(SHOTS / f"{name}-{width}.png"))


@pytest.fixture
def running(mailstack, tmp_path, daemon, refusing_server):
    """The daemon on the harness with the routes above: (daemon, port, database, config)."""
    port = free_port()
    path = config(mailstack, tmp_path, port, refusing_server)
    d = daemon(path)
    d.start()
    return d, port, tmp_path / "mc.db", path


def test_overview_probe_page_live_update_and_small_screens(running, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, port, db, _ = running
    expected = {(r, to): v.value for r, _, mailboxes in ROUTES for to, v in mailboxes.items()}
    expected[("markup", "bob")] = "send_failed"

    def decided() -> bool:
        found = rows(
            db, "SELECT DISTINCT route, recipient, verdict FROM probes WHERE verdict IS NOT NULL"
        )
        return {(r, to): v for r, to, v in found}.keys() >= expected.keys()

    wait_for(decided, 90, "a verdict for every mailbox")
    base = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(base + "/", timeout=10) as answer:
        csp = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp

    driver = browser
    driver.get(base + "/")
    for (route, recipient), verdict in expected.items():
        assert cell(driver, route, recipient).get_attribute("data-verdict") == verdict
    assert "550" in cell(driver, "trouble", "reject").text
    assert "535" in cell(driver, "wrong-password", "bob").text
    assert "inbox" in cell(driver, "to-inboxes", "vetted").text
    shoot(driver, "overview")

    # Live: a newer canary replaces the cell's link while the page stays the same document.
    driver.set_window_size(1920, 1200)
    driver.execute_script("window.stillHere = true")
    first = newest(driver, "to-inboxes", "bob")
    WebDriverWait(driver, 45, poll_frequency=0.5).until(
        lambda drv: newest(drv, "to-inboxes", "bob") > first
    )
    assert driver.execute_script("return window.stillHere === true")

    # A click leads to the refused canary's SMTP conversation; its markup stays text.
    cell(driver, "markup", "bob").find_element(By.CSS_SELECTOR, "a.what").click()
    WebDriverWait(driver, 10).until(lambda drv: "/probe/" in drv.current_url)
    table = driver.find_element(By.CSS_SELECTOR, "table.smtp").text
    assert "rcpt to" in table and "550 5.7.1" in table and EVIL in table
    assert driver.execute_script("return document.scripts.length") == 1
    assert "owned" not in driver.title
    shoot(driver, "probe")

    # A canary that arrived: where, how its arrival was timed, what the receiver said.
    driver.get(base + "/")
    cell(driver, "to-inboxes", "vetted").find_element(By.CSS_SELECTOR, "a.what").click()
    WebDriverWait(driver, 10).until(lambda drv: "/probe/" in drv.current_url)
    page = driver.find_element(By.ID, "page").text
    # Arrival is the earliest trustworthy of three clocks; the page names the one taken.
    assert "INBOX (inbox)" in page
    assert any(f"from {how}" in page for how in ARRIVAL.values())
    assert "SPF\npass example.test" in page and "DMARC\nfail example.test" in page
    assert driver.find_elements(By.CSS_SELECTOR, "table.hops tbody tr")
    assert "data 250" in driver.find_element(By.CSS_SELECTOR, "table.smtp").text.lower()
    shoot(driver, "probe-inbox")

    driver.set_window_size(400, 900)
    for page, name in (
        ("/", "overview"),
        ("/route/to-inboxes", "route"),
        ("/route/to-inboxes/vetted", "mailbox"),
        (driver.current_url, "probe"),
    ):
        driver.get(page if page.startswith("http") else base + page)
        assert fits(driver), f"{page} scrolls sideways at 400 px"
        shoot(driver, name)
        driver.set_window_size(400, 900)
    driver.set_window_size(1920, 1200)
    for page, name in (("/route/to-inboxes", "route"), ("/route/to-inboxes/vetted", "mailbox")):
        driver.get(base + page)
        shoot(driver, name)

    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_the_open_page_follows_a_reload_and_a_restart(running, browser, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    d, port, db, path = running
    wait_for(
        lambda: rows(
            db,
            "SELECT 1 FROM probes WHERE route='to-inboxes' AND recipient='bob' AND verdict='inbox'",
        ),
        60,
        "a first inbox verdict for bob",
    )
    driver = browser
    driver.get(f"http://127.0.0.1:{port}/")
    driver.execute_script("window.stillHere = true")
    assert newest(driver, "to-inboxes", "bob") > 0

    # SIGHUP with one more route: its mailbox shows up in the open page.
    path.write_text(
        path.read_text() + '\n[[routes]]\nname = "added"\nfrom = "alice"\nto = ["carol"]\n'
    )
    assert d.proc is not None
    os.kill(d.proc.pid, signal.SIGHUP)
    WebDriverWait(driver, 45, poll_frequency=0.5).until(
        lambda drv: newest(drv, "added", "carol") > 0
    )

    # A stop with the page's event stream open is prompt and clean.
    started = time.monotonic()
    assert d.signal(signal.SIGTERM) == 0
    assert time.monotonic() - started < 15
    before = newest(driver, "to-inboxes", "bob")
    d.start()
    WebDriverWait(driver, 60, poll_frequency=0.5).until(
        lambda drv: newest(drv, "to-inboxes", "bob") > before
    )
    assert driver.execute_script("return window.stillHere === true")
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    # While the daemon was down its connections were refused; nothing else may complain.
    assert all("ERR_CONNECTION_REFUSED" in e["message"] for e in errors), errors
    log = (tmp_path / "daemon.log").read_text()
    assert "Traceback" not in log and '"http request failed"' not in log
