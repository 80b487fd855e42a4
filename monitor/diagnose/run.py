"""`mailcanary diagnose ACCOUNT`: the SMTP troubleshooting guide, run step by step.

Steps, each a ✓/✗ line (– when skipped) with a remedy under every ✗:
  smtp  resolve → for the configured port and 25/465/587: port (TCP), offers (implicit TLS or
        STARTTLS, AUTH, SIZE…), certificate (trust, host name, expiry), tls_version → login
        → self_test (with --send-test: a message to the account's own address)
  imap  resolve → for the configured port and 993/143: the same four → login → folders (with
        special-use roles) → spam_folder (which, and why) → self_test (where the message landed)
Only the account's configured hosts are contacted. Pure decisions: monitor/core/diagnosis.py.
An auth = "xoauth2" account logs in (and sends the self-test) with XOAUTH2 and the access
token from its token store in the state directory, exactly as its probes do.

`--json` prints one document:
  {"account": str, "exit_code": int,
   "steps": [{"service": "smtp" | "imap", "step": str, "target": "host" | "host:port[ security]",
              "ok": true | false | null (skipped), "required": bool, "detail": str,
              "notes": [str] (e.g. one line per folder),
              "failure": null | {"kind", "phase", "transient", "code", "enhanced", "message"},
              "remedy": str | null, "data": {facts of the step}}],
   "suggestions": [str]}
`required` marks steps on the configured endpoint: their ✗ means probes cannot work.

Exit codes: 0 every step ✓; 1 only optional steps ✗ (another port closed, a certificate close
to expiry, no spam folder found); 2 a required step ✗.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from monitor.adapters import smtp_inspect
from monitor.adapters.credentials import credentials
from monitor.adapters.imap import ImapError, ImapSession
from monitor.adapters.smtp import send_message
from monitor.adapters.tls import client_context
from monitor.config.schema import Account, Endpoint
from monitor.core.catalogue import advise
from monitor.core.folders import Folder, choose_spam_folder
from monitor.core.models import Failure, Phase, Security, utcnow
from monitor.diagnose import steps as decide
from monitor.diagnose.steps import TEST_HEADER, Diagnosis, Step

SMTP_PORTS = (25, 465, 587)
IMAP_PORTS = (993, 143)
OTHER_PORT_TIMEOUT = 10.0  # a firewalled candidate port must not hold the diagnosis a minute
SKIPPED = "skipped: fix the ✗ above first"


def remedy_for(failure: Failure, account: str | None = None) -> str:
    """The catalogue's remedy, with the account's name where it says NAME (`oauth login NAME`)."""
    remedy = advise(failure).remedy
    if account is None:
        return remedy
    return re.sub(r"login NAME`?( \(NAME: this account\))?", f"login {account}`", remedy)


class _Section:
    """Adds the steps of one service about one target."""

    def __init__(
        self, steps: list[Step], service: str, target: str, required: bool, account: str
    ) -> None:
        self.steps, self.service, self.target, self.required = steps, service, target, required
        self.account = account

    def add(self, step: str, ok: bool | None, detail: str, **extra: Any) -> bool:
        failure = extra.get("failure")
        if ok is False and extra.get("remedy") is None and failure is not None:
            extra["remedy"] = remedy_for(failure, self.account)
        extra.setdefault("required", self.required)
        self.steps.append(Step(self.service, step, self.target, ok, detail, **extra))
        return ok is not False

    def failed(self, step: str, failure: Failure, **extra: Any) -> bool:
        return self.add(step, False, failure.message, failure=failure, **extra)

    def skip(self, *steps: str) -> None:
        for step in steps:
            self.add(step, None, SKIPPED)


class _Run:
    def __init__(
        self,
        account: Account,
        ports: Mapping[str, Sequence[int]],
        wait: float,
        state_dir: Path | None = None,
    ) -> None:
        self.account, self.ports, self.wait = account, ports, wait
        self.steps: list[Step] = []
        self.suggestions: list[str] = []
        self.login = credentials(account, state_dir)
        self.method = "XOAUTH2" if self.login.oauth is not None else "password"
        self.token: str | None = None  # of the self-test message, once the server took it
        self.sent_at = 0.0

    def section(self, service: str, target: str, required: bool = True) -> _Section:
        return _Section(self.steps, service, target, required, self.account.name)

    async def endpoint(self, service: str, endpoint: Endpoint) -> bool:
        """Resolve and look at every candidate port; True when the configured one looks usable."""
        here = self.section(service, endpoint.host)
        resolution = await smtp_inspect.resolve(endpoint.host, endpoint.timeout)
        if resolution.failure is not None:
            return here.failed("resolve", resolution.failure)
        here.add("resolve", True, f"{endpoint.host} → {', '.join(resolution.addresses)}")

        def look(port: int) -> Any:
            mine = port == endpoint.port
            return smtp_inspect.inspect_port(
                resolution,
                port,
                protocol=service,
                ca_files=self.account.ca_files,
                timeout=endpoint.timeout if mine else min(endpoint.timeout, OTHER_PORT_TIMEOUT),
                tls_first=True if mine and endpoint.security is Security.TLS else None,
            )

        reports = await asyncio.gather(
            *map(look, dict.fromkeys([endpoint.port, *self.ports[service]]))
        )
        observed = {r.port: r.speaks if r.ok else None for r in reports if r.accepts_tcp}
        suggestion = decide.suggest((endpoint.port, endpoint.security), observed)
        if suggestion:
            self.suggestions.append(f"{service}: {suggestion}")
        usable = True
        for r in reports:
            mine = r.port == endpoint.port
            section = self.section(service, f"{r.host}:{r.port}", required=mine)
            fine = _port_steps(section, endpoint, r, suggestion if mine else None)
            usable &= fine or not mine
        return usable

    async def smtp(self, endpoint: Endpoint, send_test: bool) -> None:
        here = self.section("smtp", _target(endpoint))
        later = ["self_test"] if send_test else []
        if not await self.endpoint("smtp", endpoint):
            return here.skip("login", *later)
        context, user = client_context(self.account.ca_files), self.login.username
        login = await smtp_inspect.smtp_login(endpoint, self.login, context)
        data = {"username": user, "tls_version": login.tls_version, "auth": list(login.mechanisms)}
        data["method"] = self.method
        if login.failure is not None:
            here.failed("login", login.failure, data=data)
            return here.skip(*later)
        how = f" with {self.method}" if self.login.oauth is not None else ""
        detail = f"logged in as {user}{how} ({login.tls_version or 'no TLS'})"
        here.add("login", True, detail, data=data)
        if not send_test:
            return None
        token, email = secrets.token_hex(8), self.account.email
        message = decide.self_test_message(email, token, utcnow())
        envelope = {"mail_from": email, "rcpt_to": email, "ssl_context": context}
        sent = await send_message(endpoint, login=self.login, message=message, **envelope)
        data = {"token": token, "queue_id": sent.queue_id}
        if sent.failure is not None:
            here.failed("self_test", sent.failure, data=data)
            return None
        self.token, self.sent_at = token, time.monotonic()
        here.add("self_test", True, f"accepted, queue id {sent.queue_id}", data=data)
        return None

    async def imap(self, endpoint: Endpoint) -> None:
        here = self.section("imap", _target(endpoint))
        later = ["folders", "spam_folder", *(["self_test"] if self.token else [])]
        if not await self.endpoint("imap", endpoint):
            return here.skip("login", *later)
        user, context = self.login.username, client_context(self.account.ca_files)
        try:
            session = await ImapSession.open(endpoint, self.login, context)
        except ImapError as exc:
            here.failed("login", exc.failure, data={"method": self.method})
            return here.skip(*later)
        step = "login"
        try:
            capabilities = sorted(session.capabilities)
            how = f" with {self.method}" if self.login.oauth is not None else ""
            detail = f"logged in as {user}{how} ({session.tls_version or 'no TLS'}); "
            data = {"capabilities": capabilities, "method": self.method}
            here.add(step, True, detail + " ".join(capabilities), data=data)
            step = "folders"
            folders = await session.list_folders()
            spam, reason = choose_spam_folder(
                folders, self.account.spam_folder, self.account.spam_folder_hint
            )
            notes = [decide.folder_line(f, spam) for f in folders]
            facts = [decide.folder_facts(f, spam) for f in folders]
            here.add(step, True, f"{len(folders)} folders", notes=notes, data={"folders": facts})
            remedy = 'Set spam_folder = "…" on the account (one of the folders above).'
            here.add("spam_folder", spam is not None, f"{spam.name if spam else 'none'}: {reason}",
                     required=False, data={"folder": spam.name if spam else None, "reason": reason},
                     remedy=None if spam else remedy)  # fmt: skip
            if self.token:
                step = "self_test"
                await self.arrival(session, here, spam)
        except ImapError as exc:
            here.failed(step, exc.failure)
        finally:
            await session.close()
        return None

    async def arrival(self, session: ImapSession, here: _Section, spam: Folder | None) -> None:
        places: list[Folder | str] = ["INBOX", *([spam] if spam else [])]
        while True:
            for place in places:
                await session.select(place)
                if await session.search_header(TEST_HEADER, self.token or ""):
                    name = place if isinstance(place, str) else place.name
                    took = time.monotonic() - self.sent_at
                    detail = f"the test message arrived in {name} after {took:.1f} s"
                    here.add("self_test", True, detail, data={"folder": name, "seconds": took})
                    return
            if time.monotonic() - self.sent_at > self.wait:
                break
            await asyncio.sleep(0.5)  # polling the mailbox: IDLE would watch one folder only
        remedy = "The server took the message but did not deliver it: check its queue and logs, "
        remedy += "and filters that move or delete mail."
        detail = f"not in INBOX or the spam folder after {self.wait:g} s"
        here.add("self_test", False, detail, remedy=remedy)


def _target(endpoint: Endpoint) -> str:
    return f"{endpoint.host}:{endpoint.port} {endpoint.security.value}"


def _port_steps(
    here: _Section, endpoint: Endpoint, r: smtp_inspect.PortReport, suggestion: str | None
) -> bool:
    """The port, offers, certificate and tls_version lines of one inspected port."""
    if not r.accepts_tcp:
        other = "Only needed if you switch to this port; networks often block some ports."
        message = r.failure.message if r.failure else "no connection"
        remedy = suggestion if here.required else other
        return here.add("port", False, message, failure=r.failure, remedy=remedy)
    ms = round((r.connect_seconds or 0) * 1000, 1)
    here.add("port", True, f"accepts TCP ({ms:g} ms, {r.address})", data={"connect_ms": ms})
    offers = decide.offers_text(r.speaks, r.tls_version, r.capabilities)
    data = {
        "speaks": r.speaks.value if r.speaks else None,
        "auth": list(decide.auth_mechanisms(r.capabilities)),
        "size": decide.size_limit(r.capabilities),
        "extensions": list(decide.extensions(r.capabilities)),
        "greeting": r.greeting,
    }
    if r.failure is not None:
        detail = f"{offers}; then {r.failure.message}" if offers else r.failure.message
        return here.add("offers", False, detail, failure=r.failure, remedy=suggestion, data=data)
    if here.required and not decide.works_as_configured(endpoint.security, r.speaks):
        failure = decide.mismatch(endpoint.security, r.speaks, here.target)
        detail = f"{offers} — {failure.message}"
        return here.add("offers", False, detail, failure=failure, remedy=suggestion, data=data)
    encrypted = r.speaks in decide.OFFERS or here.required  # "none" was asked for explicitly
    remedy = None if encrypted else "No encryption here: never log in over this port."
    here.add("offers", encrypted, offers, data=data, remedy=remedy)
    usable = True
    if r.certificate is not None:
        phase = Phase.TLS if here.service == "smtp" else Phase.IMAP_TLS
        found = decide.judge_certificate(r.certificate, endpoint.host, phase)
        usable = (
            here.add(
                "certificate",
                found.ok,
                found.detail,
                failure=found.failure,
                remedy=found.remedy,
                notes=[] if found.ok else decide.certificate_notes(r.certificate),
                data={**asdict(r.certificate), "not_after": r.certificate.not_after.isoformat()},
                required=here.required and found.required,
            )
            or not found.required
        )
    if r.tls_version is not None:
        modern = r.tls_version in decide.MODERN_TLS
        old = f"Only {r.tls_version} is offered; mailcanary needs TLS 1.2 or newer."
        remedy, data = None if modern else old, {"version": r.tls_version}
        usable &= here.add("tls_version", modern, r.tls_version, data=data, remedy=remedy)
    return usable


# ---------------------------------------------------------------- entry points and faces


async def diagnose(
    account: Account,
    *,
    send_test: bool = False,
    ports: Mapping[str, Sequence[int]] | None = None,
    wait: float = 60.0,
    state_dir: Path | None = None,
) -> Diagnosis:
    """Every step for one account; never raises but for cancellation.

    `ports` replaces the candidate ports per service ("smtp", "imap"; the configured port is
    always looked at); `wait` bounds how long the self-test message may take to arrive;
    `state_dir` holds the token store of auth = "xoauth2" accounts.
    """
    candidates = {"smtp": SMTP_PORTS, "imap": IMAP_PORTS, **(ports or {})}
    run = _Run(account, candidates, wait, state_dir)
    if account.smtp is not None:
        await run.smtp(account.smtp, send_test)
    elif send_test:
        run.section("smtp", account.name).add("self_test", None, "skipped: no smtp configured")
    if account.imap is not None:
        await run.imap(account.imap)
    return Diagnosis(account.name, run.steps, run.suggestions)


def document(diagnosis: Diagnosis) -> dict[str, Any]:
    """The `--json` document (fields in the module docstring)."""
    steps = [asdict(s) for s in diagnosis.steps]  # Failure and Certificate become dicts too
    return {
        "account": diagnosis.account,
        "exit_code": diagnosis.exit_code,
        "steps": steps,
        "suggestions": diagnosis.suggestions,
    }
