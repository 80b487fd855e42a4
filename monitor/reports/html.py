"""The report as one HTML document, from the template monitor/templates/report.html.

Mail clients render it too: the template's macros put the styles that carry meaning inline
and the layout is tables. Images come by `src` given by the caller: `cid:` references in an
email, `data:` URIs in a file opened in a browser.
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor.reports.document import Report
from monitor.reports.model import VERDICTS
from monitor.reports.query import SHORT, SHOWN_FAILURES
from monitor.reports.text import instances_line
from monitor.templates import render


def render_html(
    report: Report, images: Mapping[str, str] | None = None, *, page: str | None = None
) -> str:
    """`images`: chart name ("placement", "delivery") → the `src` to show it with; `page`:
    the status page's address ([monitor] public_url), linked under the title."""
    return render(
        "report.html",
        report=report,
        images=images or {},
        page=page,
        whose=instances_line(report),
        verdicts=VERDICTS,
        short=[SHORT[v] for v in VERDICTS],
        shown_failures=SHOWN_FAILURES,
        until=min(report.generated_at, report.period.end),
    )
