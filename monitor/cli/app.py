"""`mailcanary`: the face. Each command loads the config, calls the service, renders.

Exit codes: probe follows Nagios (0 inbox, 1 spam/late, 2 missing/send_failed,
3 check_failed); 78 bad config (EX_CONFIG); 74 database or state trouble (EX_IOERR);
69 the demo's mail stack is unavailable (EX_UNAVAILABLE); 70 an internal error.
A user never sees a traceback: every failure is one line naming the culprit.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    pass

from monitor.cli import admin
from monitor.cli.argv import hoist_global_options
from monitor.cli.common import (
    EX_CONFIG,
    EX_IOERR,
    config,
    duration_option,
    fail,
    internal_error,
    known_account,
    log_level,
    run_async,
    state,
)
from monitor.cli.oauth import oauth_app

app = typer.Typer(
    help="Watches whether email really arrives: canaries through SMTP, found over IMAP.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # help text is plain: "[web] auth" must not be eaten as markup
)
app.add_typer(oauth_app, name="oauth")


@app.callback()
def main_options(
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            metavar="FILE",
            help="Config file (default: $MAILCANARY_CONFIG, "
            "$CONFIGURATION_DIRECTORY/mailcanary.toml, /etc/mailcanary/mailcanary.toml, "
            "./mailcanary.toml).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO.")] = False,
) -> None:
    state.config_path = config_file
    state.verbose = verbose


@app.command("check-config")
def check_config() -> None:
    """Validate the config; print one line per problem (exit 78) or a summary (exit 0)."""
    cfg = config()
    typer.echo(
        f"{cfg.path}: ok — {len(cfg.accounts)} accounts, {len(cfg.routes)} routes, "
        f"{sum(len(r.recipients) for r in cfg.routes)} canaries per round"
    )


@app.command()
def probe(
    route: Annotated[
        list[str] | None,
        typer.Option("--route", "-r", metavar="NAME", help="Only this route (repeatable)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    deadline: Annotated[
        str | None, typer.Option(metavar="DURATION", help="Wait this long per canary, e.g. 2m.")
    ] = None,
    nagios: Annotated[
        bool, typer.Option("--nagios", help="One Nagios plugin line with perfdata; exit 0-3.")
    ] = False,
) -> None:
    """Send one canary per (route, recipient) now and wait for every verdict."""
    from monitor.cli.nagios import plugin_error
    from monitor.cli.probe import run_probe
    from monitor.config.file_models import DEADLINE

    try:
        cfg = config(routes=True)
    except typer.Exit:
        if not nagios:
            raise
        # Nagios reads exit codes above 3 as out of range: a broken config is UNKNOWN.
        line, code = plugin_error("bad config (see stderr)")
        typer.echo(line)
        raise typer.Exit(code) from None
    wanted = set(route or [])
    unknown = wanted - {r.name for r in cfg.routes}
    if unknown:
        fail(
            f"--route: unknown route(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(r.name for r in cfg.routes)}",
            EX_CONFIG,
        )
    routes = [r for r in cfg.routes if not wanted or r.name in wanted]
    # The verdict table already says why a mailbox could not be watched; -v shows the retries.
    log_level("ERROR")
    wait = duration_option(deadline, "--deadline", DEADLINE)
    code, records = run_async(
        lambda: run_probe(cfg, routes, deadline=wait, as_json=as_json, quiet=nagios)
    )
    if nagios:
        from monitor.cli.nagios import canaries, plugin_output

        line, code = plugin_output(canaries(records))
        typer.echo(line)
    raise typer.Exit(code)


@app.command()
def run() -> None:
    """Run the daemon: every route on its interval until SIGTERM or SIGINT."""
    from monitor.cli.serve import serve  # what the console script runs before typer loads

    raise typer.Exit(serve(state.config_path, verbose=state.verbose))


@app.command()
def history(
    since: Annotated[
        str | None,
        typer.Option(metavar="DURATION", help="Only probes planned in the last …, e.g. 1h."),
    ] = None,
    route: Annotated[
        str | None, typer.Option("--route", "-r", metavar="NAME", help="Only this route.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    limit: Annotated[int, typer.Option(metavar="N", help="At most this many probes.")] = 200,
) -> None:
    """Recorded probes, newest first."""
    from monitor.cli.probe import show_history

    cfg = config()
    log_level("WARNING")
    window = duration_option(since, "--since")
    run_async(lambda: show_history(cfg, since=window, route=route, as_json=as_json, limit=limit))


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    nagios: Annotated[
        bool,
        typer.Option(
            "--nagios",
            help="A passive Nagios check of the daemon's record: one plugin line, exit 0-3.",
        ),
    ] = False,
) -> None:
    """Where each route's mailboxes stand: last verdict, last inbox, canaries in flight.

    Exit code, the worst last verdict as in `probe`: 0 inbox, 1 spam or late, 2 missing or
    send_failed, 3 check_failed (mailboxes never decided do not count); 78 bad config, 74 the
    database cannot be read.
    """
    if nagios:  # usually answered before typer loads: see entry.py
        from monitor.cli.passive import passive_check

        raise typer.Exit(passive_check(state.config_path, verbose=state.verbose))
    from monitor.cli.status import show_status

    cfg = config()
    log_level("WARNING")
    raise typer.Exit(run_async(lambda: show_status(cfg, as_json=as_json)))


@app.command()
def diagnose(
    account: Annotated[str, typer.Argument(help="The account's name in the config.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
    send_test: Annotated[
        bool, typer.Option("--send-test", help="Also send a message to itself and find it.")
    ] = False,
) -> None:
    """Check one account step by step: DNS, ports, TLS, certificate, login, IMAP folders."""
    from monitor.cli.diagnose import run_diagnose

    cfg = config()
    chosen = known_account(cfg, account)
    log_level("ERROR")
    wait = min(cfg.monitor.deadline, 120.0)  # an interactive command: not the full deadline
    state_dir = cfg.monitor.state_dir
    code = run_async(
        lambda: run_diagnose(
            chosen, as_json=as_json, send_test=send_test, wait=wait, state_dir=state_dir
        )
    )
    raise typer.Exit(code)


@app.command()
def report(
    since: Annotated[
        str | None,
        typer.Option(metavar="DURATION", help="The last …, e.g. 7d (default: last week)."),
    ] = None,
    date_from: Annotated[
        str | None, typer.Option("--from", metavar="DAY", help="First day, e.g. 2026-11-02.")
    ] = None,
    date_to: Annotated[
        str | None, typer.Option("--to", metavar="DAY", help="Last day (included).")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", metavar="text|html|json|csv", help="The output format.")
    ] = "text",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write to FILE.")
    ] = None,
    instance: Annotated[
        list[str] | None,
        typer.Option(
            "--instance",
            metavar="NAME",
            help="Only the canaries this instance sent (repeat it, or a,b).",
        ),
    ] = None,
    by_instance: Annotated[
        bool, typer.Option("--by-instance", help="Each mailbox's line per instance.")
    ] = False,
    check_dns: Annotated[
        bool,
        typer.Option("--dns/--no-dns", help="Check the senders' DNS and blocklists now."),
    ] = True,
) -> None:
    """The deliverability report of a period, per route and mailbox, grouped by provider."""
    from monitor.cli.report import ReportArgsError, ReportUnavailable, run_report

    cfg = config()
    log_level("WARNING")
    window = duration_option(since, "--since")
    try:
        code = run_async(
            lambda: run_report(
                cfg,
                since=window,
                date_from=date_from,
                date_to=date_to,
                fmt=fmt,
                output=output,
                instances=instance or (),
                by_instance=by_instance,
                check_dns=check_dns,
            )
        )
    except ReportArgsError as exc:
        fail(str(exc), 2)
    except ReportUnavailable as exc:
        fail(str(exc), EX_IOERR)
    raise typer.Exit(code)


@app.command("dns")
def dns_check(
    account: Annotated[str, typer.Argument(help="Account name from the config.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per finding and line.")
    ] = False,
) -> None:
    """DNS posture of ACCOUNT's sending domain: MX, SPF, DMARC, DKIM, PTR, DNSBL. Exit 0-3."""
    from monitor.cli.dns import report_account

    cfg = config()
    target = known_account(cfg, account)
    log_level("WARNING")
    raise typer.Exit(run_async(lambda: report_account(target, cfg.dns, as_json=as_json)))


@app.command("lint-message")
def lint_message(
    file: Annotated[Path, typer.Argument(help="The message as an RFC 5322 file (.eml).")],
    account: Annotated[
        str | None, typer.Option(help="Check From and DKIM against this account.")
    ] = None,
    bulk: Annotated[
        bool | None, typer.Option("--bulk/--not-bulk", help="Bulk mail? (default: guessed)")
    ] = None,
    spamd: Annotated[
        str | None, typer.Option(help="Ask this spamd (HOST:PORT) via spamc instead.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Content checks before sending, plus SpamAssassin's score when it is installed.
    Exit 0 clean, 1 warnings, 65 errors or spam, 66 unreadable, 78 bad config."""
    from monitor.cli.lint import lint_command

    raise typer.Exit(lint_command(file, account, bulk=bulk, spamd=spamd, as_json=as_json))


@app.command()
def providers(
    as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
) -> None:
    """The provider presets: hosts, ports, security, spam folder, how programs log in."""
    from monitor.cli.probe import show_providers

    show_providers(as_json=as_json)


@app.command()
def alerts(
    include_all: Annotated[
        bool,
        typer.Option("--all", help="Also pending and resolved alerts, and removed routes'."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Alerts firing now (--all: recent ones too) and how their messages went out."""
    from monitor.cli.alerts import show_alerts

    cfg = config()
    log_level("WARNING")
    raise typer.Exit(run_async(lambda: show_alerts(cfg, include_all=include_all, as_json=as_json)))


@app.command("test-alert")
def test_alert() -> None:
    """Send one test alert through every channel and say how each went (exit 1: one failed)."""
    from monitor.cli.alerts import run_test_alert

    cfg = config()
    log_level("WARNING")
    raise typer.Exit(run_async(lambda: run_test_alert(cfg)))


admin.register(app)  # db upgrade, web-password, demo: last in --help


def main(args: list[str] | None = None) -> None:
    """Every command through typer; `args` are the arguments after the program's name."""
    try:
        app(args=hoist_global_options(sys.argv[1:] if args is None else args))
    except Exception as exc:  # the last line of defence: never a traceback for a user
        internal_error(exc)


if __name__ == "__main__":
    main()
