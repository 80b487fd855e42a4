"""The pure decisions of `mailcanary diagnose`: which port/security to suggest, the exit code,
and host-name matching for certificates."""

from __future__ import annotations

import pytest

from monitor.core.certificate import host_matches
from monitor.core.models import Security
from monitor.diagnose.steps import Step, exit_code, suggest, works_as_configured

TLS, STARTTLS, NONE = Security.TLS, Security.STARTTLS, Security.NONE
PROVIDER = {25: STARTTLS, 465: TLS, 587: STARTTLS}  # what a typical provider's ports speak


@pytest.mark.parametrize(
    ("configured", "observed", "expected"),
    [
        # The issue's own example, word for word.
        (
            (587, TLS),
            PROVIDER,
            '587 offers STARTTLS; you asked for tls on 587 — use security = "starttls"',
        ),
        (
            (465, STARTTLS),
            PROVIDER,
            '465 offers implicit TLS; you asked for starttls on 465 — use security = "tls"',
        ),
        (
            (587, NONE),
            PROVIDER,
            '587 offers STARTTLS; you asked for none on 587 — use security = "starttls"',
        ),
        # A closed port: another submission port, the asked-for style first, 25 last.
        (
            (2525, STARTTLS),
            PROVIDER,
            '2525 does not answer; 587 offers STARTTLS — use port = 587, security = "starttls"',
        ),
        (
            (2525, TLS),
            PROVIDER,
            '2525 does not answer; 465 offers implicit TLS — use port = 465, security = "tls"',
        ),
        (
            (587, STARTTLS),
            {25: STARTTLS, 465: TLS},
            '587 does not answer; 465 offers implicit TLS — use port = 465, security = "tls"',
        ),
        (
            (587, STARTTLS),
            {25: STARTTLS},
            '587 does not answer; 25 offers STARTTLS — use port = 25, security = "starttls"',
        ),
        # Plain only where encryption was asked for: point at a port that has it.
        (
            (587, STARTTLS),
            {587: NONE, 465: TLS},
            '587 offers no encryption; 465 offers implicit TLS — use port = 465, security = "tls"',
        ),
        (
            (993, STARTTLS),
            {993: TLS, 143: STARTTLS},
            '993 offers implicit TLS; you asked for starttls on 993 — use security = "tls"',
        ),
    ],
)
def test_suggestions(configured, observed, expected):
    assert suggest(configured, observed) == expected


@pytest.mark.parametrize(
    ("configured", "observed"),
    [
        ((587, STARTTLS), PROVIDER),  # as configured
        ((465, TLS), PROVIDER),
        ((25, NONE), {25: NONE}),  # plain asked for, plain found
        ((587, TLS), {587: None, 465: TLS}),  # answered, but what it speaks is unknown (e.g. 421)
        ((587, STARTTLS), {587: NONE, 25: NONE}),  # nowhere better to go
        ((587, STARTTLS), {}),  # nothing answers at all
    ],
)
def test_no_suggestion(configured, observed):
    assert suggest(configured, observed) is None


def test_what_works_as_configured():
    assert works_as_configured(STARTTLS, STARTTLS) and works_as_configured(TLS, TLS)
    assert works_as_configured(NONE, STARTTLS)  # plain text works where STARTTLS is merely offered
    assert not works_as_configured(STARTTLS, NONE) and not works_as_configured(TLS, STARTTLS)
    assert not works_as_configured(STARTTLS, TLS) and not works_as_configured(TLS, None)


def _step(ok: bool | None, required: bool) -> Step:
    return Step("smtp", "port", "h:1", ok, "", required=required)


def test_exit_code_is_the_worst_failure():
    assert exit_code([_step(True, True), _step(None, True)]) == 0
    assert exit_code([_step(True, True), _step(False, False)]) == 1
    assert exit_code([_step(False, False), _step(False, True)]) == 2
    assert exit_code([]) == 0


@pytest.mark.parametrize(
    ("host", "dns", "ips", "expected"),
    [
        ("mx.example.com", ["mx.example.com"], [], True),
        ("MX.Example.com.", ["mx.example.com"], [], True),
        ("mx.example.com", ["*.example.com"], [], True),
        ("example.com", ["*.example.com"], [], False),  # a wildcard needs a label
        ("a.mx.example.com", ["*.example.com"], [], False),  # and covers one label only
        ("mx.example.com", ["wrong.example"], [], False),
        ("127.0.0.1", ["localhost"], ["127.0.0.1"], True),
        ("127.0.0.1", ["127.0.0.1"], [], False),  # an IP must be an IP name, not a DNS name
        ("::1", [], ["0:0:0:0:0:0:0:1"], True),
    ],
)
def test_host_matches(host, dns, ips, expected):
    assert host_matches(host, dns, ips) is expected
