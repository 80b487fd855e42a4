"""`mailcanary dns ACCOUNT`: the sending domain's DNS posture as a table or JSON lines."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from monitor.config.schema import Account, DnsSettings
from monitor.dnscheck.policy import exit_code
from monitor.dnscheck.run import check_account, finding_dict, sending_domain

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "error": "magenta"}


async def report_account(account: Account, dns_settings: DnsSettings, *, as_json: bool) -> int:
    """Check, print (table, JSON lines, or one line when nothing could be looked up), and
    return the exit code."""
    findings = await check_account(account, dns_settings)
    out = Console(highlight=False, markup=False)
    if not out.is_terminal:
        out = Console(highlight=False, markup=False, width=200)  # piped: do not wrap
    if as_json:
        for finding in findings:
            sys.stdout.write(json.dumps(finding_dict(account, finding), ensure_ascii=False) + "\n")
    elif [f.check for f in findings] == ["resolver"]:
        Console(stderr=True, highlight=False, soft_wrap=True, markup=False).print(
            f"[bold red]mailcanary:[/] dns {escape(str(account.name))}: "
            f"{escape(str(findings[0].target))}: "
            f"{escape(str(findings[0].detail))}",
            markup=True,
        )
    else:
        table = Table(title=f"DNS posture of {sending_domain(account)} ({account.name})")
        for column in ("check", "target", "status", "detail"):
            table.add_column(column)
        for f in findings:
            detail = Text(f.detail)
            if f.remedy:
                detail.append(f"\n→ {f.remedy}", style="dim")
            table.add_row(f.check, f.target, Text(str(f.status), _STYLE[f.status]), detail)
        out.print(table)
    return exit_code(findings)
