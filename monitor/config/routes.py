"""The [[routes]] tables, resolved against the accounts: who sends, who watches, how often.

A route names accounts only; whether they can do their part (smtp to send, imap to watch) is
checked here, so the problem line points at the route that asks for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor.config.file_models import REMOTE_INTERVAL, RouteFile
from monitor.config.problems import check_table, excerpt, table_label
from monitor.config.schema import Account, Route
from monitor.core.durations import format_duration


def resolve_routes(
    tables: list[tuple[int, dict[str, Any]]],
    accounts: Mapping[str, Account | None],
    interval: float,
    base: Path = Path(),
) -> tuple[list[Route], list[str]]:
    """The routes and the problems found. `tables` are (position, table) pairs; `accounts`
    holds None for an account with problems (already reported: it still counts as known);
    `interval` is the default for routes that set none; `base` is where relative message
    files are found (the config file's directory)."""
    routes: list[Route] = []
    problems: list[str] = []
    first_seen: dict[str, str] = {}
    for index, raw in tables:
        label = table_label("routes", index, raw.get("name"))
        checked = check_table(RouteFile, raw, label, {"from": "", "to": [""]})
        problems += checked.problems
        found = checked.model
        if found is None:
            continue
        if "from" not in checked.dropped:
            problems += _sender_problems(found.sender, accounts, f"{label}.from")
        recipients = [] if "to" in checked.dropped else found.recipients
        for position, recipient in enumerate(recipients):
            where = f"{label}.to[{position}]"
            if recipient in found.recipients[:position]:
                problems.append(f"{where}: {excerpt(recipient)} is listed twice")
            elif recipient not in accounts:
                problems.append(f"{where}: unknown account {excerpt(recipient)}")
            elif (account := accounts[recipient]) and account.imap is None:
                problems.append(f"{where}: account {excerpt(recipient)} has no imap to watch")
        message, template = _files(found, base)
        found_problems = _content_problems(found, base, accounts.get(found.sender), label)
        problems += found_problems
        if checked.dropped or found_problems:
            continue
        route_name = found.name or f"{found.sender}->{','.join(found.recipients)}"
        if route_name in first_seen:
            problems.append(
                f"{label}.name: duplicate route name {excerpt(route_name)} "
                f"(also {first_seen[route_name]})"
            )
            continue
        first_seen[route_name] = f"routes[{index}]"
        own = found.interval is not None
        every = found.interval if own else interval
        remote = _remote_host(found.sender, found.recipients, accounts)
        if every < REMOTE_INTERVAL and remote:
            problems.append(
                f"{label}.interval: must be at least {format_duration(REMOTE_INTERVAL)} for a "
                f"server not on this machine ({excerpt(remote)}), got {format_duration(every)}"
                + ("" if own else " (monitor.interval)")
            )
        routes.append(
            Route(
                name=route_name,
                sender=found.sender,
                recipients=found.recipients,
                interval=every,
                message=message,
                message_template=template,
                subject=found.subject,
            )
        )
    return routes, problems


def _remote_host(
    sender: str, recipients: list[str], accounts: Mapping[str, Account | None]
) -> str | None:
    """A host the route talks to that is not on this machine, if any."""
    endpoints = [(a := accounts.get(sender)) and a.smtp]
    endpoints += [(a := accounts.get(name)) and a.imap for name in recipients]
    return next((e.host for e in endpoints if e and not e.on_loopback), None)


def _files(found: RouteFile, base: Path) -> tuple[Path | None, Path | None]:
    """The route's message file and template, relative to the config file's directory."""
    message = base / found.message if found.message else None
    return message, base / found.message_template if found.message_template else None


def _content_problems(
    found: RouteFile, base: Path, sender: Account | None, label: str
) -> list[str]:
    """The route's real message (#16), checked now so a bad file never fails at send time."""
    if found.message is not None and found.message_template is not None:
        return [f"{label}: set message or message_template, not both"]
    if (found.subject is None) != (found.message_template is None):
        key = "subject" if found.subject is None else "message_template"
        return [f"{label}.{key}: subject and message_template go together"]
    if found.message is None and found.message_template is None:
        return []  # the plain canary
    # Imported here: reading mail needs the email package (and a template Jinja2), which
    # every command would pay for while loading the config (issue #17).
    from monitor.content.message import RouteContent, route_problems

    message, template = _files(found, base)
    content = RouteContent(message=message, template=template, subject=found.subject)
    key = "message" if found.message else "message_template"
    email = sender.email if sender else None
    return [f"{label}.{key}: {line}" for line in route_problems(content, email)]


def _sender_problems(sender: str, accounts: Mapping[str, Account | None], where: str) -> list[str]:
    if sender not in accounts:
        return [f"{where}: unknown account {excerpt(sender)}"]
    if (account := accounts[sender]) and account.smtp is None:
        return [f"{where}: account {excerpt(sender)} has no smtp to send with"]
    return []
