"""The one Jinja2 environment of mailcanary: the weekly report, the alert mails and the
status page (monitor/web) render their HTML here, from templates in this folder that extend
`base.html` and share `style.css`.

Autoescape is on for every .html template: SMTP replies, folder names and headers are
attacker-controlled, so no template marks them `|safe`. The only Markup made here is our
own stylesheet, put into <style> (inside which HTML escaping would break the CSS).

Mail clients often drop <style> (Gmail in some views, Outlook's Word engine partly), so
mail templates use the macros of `mail.html`, which also write the styles that carry
meaning (colours, borders, alignment) inline; the <style> block adds layout for clients that
keep it (narrow screens, scrolling tables) and is all the page needs.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from monitor.templates.filters import (
    code_spans,
    local_time,
    percent,
    plural,
    seconds,
    trend_text,
)

if TYPE_CHECKING:
    from jinja2 import Environment


@cache
def environment() -> Environment:
    # Jinja2 is imported by the first page, alert or report rendered, not with this package:
    # its filters are shared by modules the daemon loads at start (memory: issue #17).
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("monitor", "templates"),
        autoescape=select_autoescape(["html", "xml"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    shared = (percent, seconds, local_time, plural, code_spans)
    env.filters.update({f.__name__: f for f in shared}, trend=trend_text)
    env.globals["stylesheet"] = stylesheet()
    return env


@cache
def stylesheet() -> Markup:
    """style.css, for a <style> element or to serve as a file."""
    return Markup(files("monitor.templates").joinpath("style.css").read_text(encoding="utf-8"))


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)
