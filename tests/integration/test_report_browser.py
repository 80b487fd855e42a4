"""The report and an alert mail as a person sees them: headless Chromium (Debian's
`chromium` + `chromium-driver`) at 1200 and 400 px. Each section is there, nothing makes the
page scroll sideways, the charts load at 2× and the console stays clean. Full-page
screenshots go to tests/artifacts/ (ignored by git) for a person to look at."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.alerts import message as alertmsg
from monitor.reports.charts import draw_charts
from monitor.reports.html import render_html
from tests.unit.report_data import empty_week, troubled_week
from tests.unit.test_templates import spam_with_auth

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SECTIONS = [
    "verdict",
    "placement",
    "authentication",
    "dns",
    "fixes",
    "content",
    "trends",
    "worst_hours",
    "incidents",
    "days",
    "failures",
]
WIDTHS = (1200, 400)

webdriver = pytest.importorskip("selenium.webdriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and DRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()  # ends chromedriver and the browser it started


def show(driver: object, page: Path, width: int) -> None:
    """Load `page` in a viewport `width` CSS pixels wide (a phone at 400: the viewport meta
    decides the layout width there), at device scale 2 as on a high-density screen."""
    driver.execute_cdp_cmd(  # type: ignore[attr-defined]
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 2, "mobile": width < 600},
    )
    driver.get(page.as_uri())  # type: ignore[attr-defined]


def screenshot(driver: object, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = driver.execute_cdp_cmd(  # type: ignore[attr-defined]
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    path = ARTIFACTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def overflow(driver: object) -> tuple[int, int]:
    return driver.execute_script(  # type: ignore[attr-defined]
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )


def severe_console_messages(driver: object) -> list[str]:
    entries = driver.get_log("browser")  # type: ignore[attr-defined]
    return [e["message"] for e in entries if e["level"] == "SEVERE"]


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pages")
    report = troubled_week()
    images = {
        name: "data:image/png;base64," + base64.b64encode(png).decode()
        for name, png in draw_charts(report).items()
    }
    written = {
        "report": render_html(report, images),
        "empty": render_html(empty_week()),
        "alert": alertmsg.html_body(spam_with_auth(), "Europe/Athens"),
    }
    # What a mail client that drops <style> (Gmail in some views) is left with.
    written["mail"] = re.sub(r"<style>.*?</style>", "", written["report"], flags=re.S)
    for name, html in written.items():
        (folder / f"{name}.html").write_text(html, encoding="utf-8")
    return {name: folder / f"{name}.html" for name in written}


@pytest.mark.parametrize("width", WIDTHS)
def test_the_report_reads_top_to_bottom_without_sideways_scrolling(browser, pages, width) -> None:
    show(browser, pages["report"], width)
    tops = browser.execute_script(
        "return arguments[0].map(s => { const e = document.querySelector("
        "`[data-section='${s}']`); return e && e.offsetHeight > 0 ? e.offsetTop : null; })",
        SECTIONS,
    )
    assert None not in tops, dict(zip(SECTIONS, tops, strict=True))
    assert tops == sorted(tops)  # in the order the issue asks for
    verdict = browser.find_element("css selector", "[data-section=verdict]").text
    assert verdict.startswith("RED") and "Gmail: 8.9% to spam (was 0.2%)" in verdict
    assert "DMARC fails on 40% of those" in verdict
    charts = browser.execute_script(
        "return [...document.images].map(i => [i.complete, i.naturalWidth, i.clientWidth])"
    )
    assert len(charts) == 4
    for complete, natural, shown in charts:
        assert complete and natural == 1440 and 0 < shown <= min(720, width)
    scroll, inner = overflow(browser)
    assert scroll <= inner, f"the page scrolls sideways at {width} px: {scroll} > {inner}"
    assert severe_console_messages(browser) == []
    shot = screenshot(browser, f"report-{width}")
    assert shot.stat().st_size > 10_000


def test_without_its_stylesheet_the_report_still_fits_and_keeps_its_colours(browser, pages):
    """The inline styles carry the mail: tables still scroll inside themselves at 400 px."""
    show(browser, pages["mail"], 400)
    assert browser.execute_script("return document.styleSheets.length") == 0
    scroll, inner = overflow(browser)
    assert scroll <= inner, f"{scroll} > {inner}"
    state = browser.find_element("css selector", "[data-field=state]")
    assert state.value_of_css_property("background-color") == "rgba(198, 40, 40, 1)"  # red
    screenshot(browser, "mail-without-style-400")


@pytest.mark.parametrize("width", WIDTHS)
def test_an_empty_week_and_an_alert_fit_too(browser, pages, width) -> None:
    show(browser, pages["empty"], width)
    body = browser.find_element("css selector", "body").text
    assert "no canaries in this period" in body.lower()
    assert "every canary reached the inbox" not in body.lower()
    assert overflow(browser)[0] <= overflow(browser)[1]
    screenshot(browser, f"empty-{width}")
    show(browser, pages["alert"], width)
    text = browser.find_element("css selector", "body").text
    assert "canaries land in spam" in text and "spf=pass dkim=pass dmarc=fail" in text
    assert "2026-11-29 14:00:00 EET (12:00 UTC)" in text
    commands = browser.find_elements("css selector", "code")
    assert "mailcanary history --route r1" in [c.text for c in commands]
    assert all("monospace" in c.value_of_css_property("font-family") for c in commands)
    assert overflow(browser)[0] <= overflow(browser)[1]
    screenshot(browser, f"alert-{width}")
