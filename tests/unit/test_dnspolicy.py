"""The DNS posture verdicts, table by table, over records as a resolver would return them."""

from __future__ import annotations

import base64
import secrets

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from monitor.dnscheck.policy import (
    Finding,
    Status,
    evaluate_dkim,
    evaluate_dmarc,
    evaluate_dnsbl,
    evaluate_mx,
    evaluate_ptr,
    exit_code,
    reverse_name,
    rsa_bits,
)
from monitor.dnscheck.spf import SpfFacts, SpfSyntaxError, evaluate_spf, parse_spf, spf_lookups

OK, WARN, FAIL, ERROR = Status.OK, Status.WARN, Status.FAIL, Status.ERROR


def rsa_key(bits: int, *, pkcs1: bool = False) -> str:
    """A DER public key with a `bits`-long modulus (odd, random: its factors do not matter)."""
    modulus = secrets.randbits(bits) | (1 << (bits - 1)) | 1
    public = rsa.RSAPublicNumbers(65537, modulus).public_key()
    shape = (
        serialization.PublicFormat.PKCS1
        if pkcs1
        else serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(public.public_bytes(serialization.Encoding.DER, shape)).decode()


def statuses(findings: list[Finding]) -> dict[str, Status]:
    return {f.check: f.status for f in findings}


# ---------------------------------------------------------------- SPF parsing


D, MAIL = ("a", "d.test"), ("a", "mail.example.org")


@pytest.mark.parametrize(
    ("record", "lookups"),
    [
        ("v=spf1 -all", []),
        ("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all", []),
        ("v=spf1 a mx/24 a:Mail.Example.org/24//64 -all", [D, ("mx", "d.test"), MAIL]),
        ("v=spf1 include:_spf.example.org exists:%{i}.%{d2/}.x.test ptr ?all",
         [("include", "_spf.example.org"), ("exists", "%{i}.%{d2/}.x.test"), ("ptr", "d.test")]),
        ("v=spf1 redirect=_spf.d.test", [("redirect", "_spf.d.test")]),
        ("v=spf1 -all redirect=_spf.d.test exp=explain.d.test", []),  # all wins over redirect
        ("V=SPF1 +A -ALL", [D]),
    ],
)  # fmt: skip
def test_spf_lookups_are_the_terms_that_query_dns(record: str, lookups: list) -> None:
    assert spf_lookups(parse_spf(record), "d.test") == lookups


@pytest.mark.parametrize(
    "record",
    [
        "v=spf10 -all",
        "v=spf1 include -all",
        "v=spf1 all:x.test",
        "v=spf1 ip4:300.1.1.1 -all",
        "v=spf1 ip4:2001:db8::1 -all",
        "v=spf1 a:x.test redirect=a.test redirect=b.test",
        "v=spf1 foo:x.test -all",
        "v=spf1 mx:x.test/y -all",
    ],
)
def test_spf_syntax_errors_are_refused(record: str) -> None:
    with pytest.raises(SpfSyntaxError):
        parse_spf(record)


# ---------------------------------------------------------------- SPF evaluation

CHAIN = {f"c{n}.test": [f"v=spf1 include:c{n + 1}.test -all"] for n in range(1, 11)}
CHAIN["c11.test"] = ["v=spf1 -all"]
REDIRECTED = {
    "d.test": ["v=spf1 mx redirect=r.test", "site-verification=x"],
    "r.test": ["v=spf1 include:i.test -all"],
    "i.test": ["v=spf1 ~all"],
}
LOOP = {"d.test": ["v=spf1 include:l.test -all"], "l.test": ["v=spf1 include:d.test -all"]}
VOIDS = {"a:x.test", "a:y.test", "exists:z.test"}


def spf(record: str) -> dict[str, list[str]]:
    return {"d.test": [record]}


def judged(spf: Status, all_: Status, lookups: Status) -> dict[str, Status]:
    return {"spf": spf, "spf_all": all_, "spf_lookups": lookups}


@pytest.mark.parametrize(
    ("txt", "void", "failed", "expected", "words"),
    [
        # -all behind a redirect decides; a non-SPF TXT next to the record is ignored
        (REDIRECTED, set(), {}, judged(OK, OK, OK), "3 of 10"),
        (spf("v=spf1 ~all"), set(), {}, judged(OK, OK, OK), "~all"),
        (spf("v=spf1 ?all"), set(), {}, judged(OK, WARN, OK), "neutral"),
        (spf("v=spf1 a"), set(), {}, judged(OK, WARN, OK), "no all"),
        ({**spf("v=spf1 include:c1.test +all"), **CHAIN}, set(), {}, judged(OK, FAIL, FAIL),
         "11 DNS lookups, over the limit of 10 (crossed at include:c11.test in c10.test)"),
        (LOOP, set(), {}, judged(OK, OK, FAIL), "d.test → l.test → d.test"),
        (spf("v=spf1 a:x.test mx:y.test -all"), {"a:x.test"}, {}, judged(OK, OK, WARN),
         "a:x.test"),
        (spf("v=spf1 a:x.test a:y.test exists:z.test -all"), VOIDS, {}, judged(OK, OK, FAIL),
         "over 2"),
        (spf("v=spf1 ptr -all"), set(), {}, judged(WARN, OK, OK), "ptr"),
        ({**spf("v=spf1 include:gone.test -all"), "gone.test": []}, set(), {},
         judged(FAIL, OK, OK), "include:gone.test: no SPF records"),
        (spf("v=spf1 include:slow.test -all"), set(), {"slow.test": "timeout"},
         judged(ERROR, OK, OK), "timeout"),
        (spf("site-verification=x"), set(), {}, {"spf": FAIL}, "no SPF"),
        ({"d.test": ["v=spf1 -all", "v=spf1 ~all"]}, set(), {}, {"spf": FAIL}, "2 SPF records"),
        (spf("v=spf1 mx:x.test/y -all"), set(), {}, {"spf": FAIL}, "bad domain"),
    ],
)  # fmt: skip
def test_spf_verdicts(txt: dict, void: set, failed: dict, expected: dict, words: str) -> None:
    findings = evaluate_spf("d.test", SpfFacts(txt, failed, frozenset(void)))
    assert statuses(findings) == expected
    assert words in " ".join(f"{f.detail}" for f in findings)
    assert all(f.remedy for f in findings if f.status in (WARN, FAIL))


# ---------------------------------------------------------------- DMARC, DKIM, MX


HERE = "_dmarc.d.test"


@pytest.mark.parametrize(
    ("at", "txt", "status", "words"),
    [
        (HERE, ["v=DMARC1; p=reject; rua=mailto:r@d.test"], OK, "p=reject"),
        (HERE, ["v=DMARC1;p=quarantine;rua=mailto:r@d.test;pct=100"], OK, "p=quarantine"),
        (HERE, ["v=DMARC1; p=none; rua=mailto:r@d.test"], WARN, "monitoring only"),
        (HERE, ["v=DMARC1; p=reject"], WARN, "no rua"),
        (HERE, ["v=DMARC1; p=reject; rua=mailto:r@d.test; pct=20"], WARN, "pct=20"),
        (HERE, ["v=DMARC1; rua=mailto:r@d.test"], FAIL, "p= missing"),
        (HERE, ["v=DMARC1; p=block; rua=mailto:r@d.test"], FAIL, "p= missing or invalid"),
        (HERE, [], FAIL, "no DMARC record"),
        (HERE, ["v=dmarc1; p=reject"], FAIL, "no DMARC record"),
        (HERE, ["v=DMARC1; p=reject", "v=DMARC1; p=none"], FAIL, "2 DMARC records"),
        # the parent's sp= (subdomain policy) is what applies to a subdomain
        ("_dmarc.test", ["v=DMARC1; p=reject; sp=none; rua=mailto:r@t"], WARN, "from _dmarc.test"),
        ("_dmarc.test", ["v=DMARC1; p=none; sp=reject; rua=mailto:r@t"], OK, "sp=reject"),
    ],
)
def test_dmarc_verdicts(at: str, txt: list[str], status: Status, words: str) -> None:
    finding = evaluate_dmarc("d.test", at, txt)
    assert (finding.check, finding.target, finding.status) == ("dmarc", "d.test", status)
    assert words in finding.detail
    assert bool(finding.remedy) == (status is not OK)


ED25519 = base64.b64encode(
    ed25519.Ed25519PrivateKey.generate()
    .public_key()
    .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
).decode()
KEY_2048 = rsa_key(2048)


@pytest.mark.parametrize(
    ("txt", "status", "words"),
    [
        ([f"v=DKIM1; k=rsa; p={KEY_2048}"], OK, "2048-bit"),
        ([f"p={KEY_2048[:100]} {KEY_2048[100:]}"], OK, "k=rsa, 2048-bit"),  # spaces in p= allowed
        ([f"v=DKIM1; p={rsa_key(2048, pkcs1=True)}"], OK, "2048-bit"),
        ([f"v=DKIM1; k=ed25519; p={ED25519}"], OK, "k=ed25519"),
        ([f"v=DKIM1; p={rsa_key(1024)}"], WARN, "1024-bit"),
        ([f"v=DKIM1; p={rsa_key(768)}"], FAIL, "768-bit"),
        ([f"v=DKIM1; p={KEY_2048}; t=y"], WARN, "testing"),
        (["v=DKIM1; k=rsa; p="], FAIL, "revoked"),
        ([], FAIL, "no DKIM key"),
        (["some other text"], FAIL, "no DKIM key"),
        ([f"v=DKIM2; p={KEY_2048}"], FAIL, "not DKIM1"),
        ([f"v=DKIM1; k=dsa; p={KEY_2048}"], FAIL, "k=dsa"),
        (["v=DKIM1; p=not*base64"], FAIL, "not a public key"),
        ([f"v=DKIM1; p={KEY_2048}", f"v=DKIM1; p={KEY_2048}"], FAIL, "2 key records"),
    ],
)
def test_dkim_verdicts(txt: list[str], status: Status, words: str) -> None:
    finding = evaluate_dkim("d.test", "s1", txt)
    assert (finding.target, finding.status) == ("s1._domainkey.d.test", status)
    assert words in finding.detail


@pytest.mark.parametrize("bits", [512, 1023, 2048, 4096])
def test_rsa_bits_reads_the_modulus_size(bits: int) -> None:
    assert rsa_bits(base64.b64decode(rsa_key(bits))) == bits
    assert rsa_bits(base64.b64decode(rsa_key(bits, pkcs1=True))) == bits
    assert rsa_bits(base64.b64decode(rsa_key(bits))[:40]) is None


@pytest.mark.parametrize(
    ("mx", "addresses", "status"),
    [
        ([(20, "b.d.test"), (10, "a.d.test")], [], OK),
        ([(0, ".")], ["192.0.2.1"], FAIL),
        ([], ["192.0.2.1"], WARN),
        ([], [], FAIL),
    ],
)
def test_mx_verdicts(mx: list, addresses: list, status: Status) -> None:
    finding = evaluate_mx("d.test", mx, addresses)
    assert finding.status == status
    assert status != OK or finding.detail == "10 a.d.test, 20 b.d.test"


# ---------------------------------------------------------------- PTR and DNSBL


@pytest.mark.parametrize(
    ("address", "names", "forward", "status"),
    [
        ("192.0.2.1", ["mx.d.test"], {"mx.d.test": ["192.0.2.1"]}, OK),
        ("192.0.2.1", ["x.d.test", "mx.d.test"], {"mx.d.test": ["192.0.2.9", "192.0.2.1"]}, OK),
        ("2001:db8::1", ["mx.d.test"], {"mx.d.test": ["2001:db8:0:0::1"]}, OK),
        ("192.0.2.1", ["mx.d.test"], {"mx.d.test": ["192.0.2.2"]}, FAIL),
        ("192.0.2.1", ["mx.d.test"], {}, FAIL),
        ("192.0.2.1", [], {}, FAIL),
    ],
)
def test_ptr_must_be_forward_confirmed(address: str, names: list, forward: dict, status) -> None:
    assert evaluate_ptr(address, names, forward).status == status


def test_reverse_names_for_dnsbl() -> None:
    assert reverse_name("192.0.2.1") == "1.2.0.192"
    nibbles = "1" + ".0" * 23 + ".8.b.d.0.1.0.0.2"
    assert reverse_name("2001:db8::1") == nibbles


@pytest.mark.parametrize(
    ("zone", "answers", "status", "words"),
    [
        ("zen.spamhaus.org", [], OK, "not listed"),
        ("zen.spamhaus.org", ["127.0.0.2"], FAIL, "SBL"),
        ("zen.spamhaus.org", ["127.0.0.4", "127.0.0.10"], FAIL, "PBL"),
        ("bl.spamcop.net", ["127.0.0.2"], FAIL, "listed: 127.0.0.2: why"),
        ("zen.spamhaus.org", ["127.255.255.254"], WARN, "public or open resolvers"),
        ("zen.spamhaus.org", ["127.255.255.255"], WARN, "too many queries"),
        ("zen.spamhaus.org", ["127.255.255.252"], WARN, "typing error"),
        ("zen.spamhaus.org", ["198.51.100.7"], ERROR, "not a DNSBL code"),
        ("zen.spamhaus.org", ["127.0.0.1"], ERROR, "not a DNSBL code"),
    ],
)
def test_dnsbl_answers(zone: str, answers: list[str], status: Status, words: str) -> None:
    finding = evaluate_dnsbl("192.0.2.1", zone, answers, "why" if answers else "")
    assert (finding.target, finding.status) == (f"192.0.2.1 on {zone}", status)
    assert words in finding.detail
    assert status is not WARN or "not a listing" in finding.detail


@pytest.mark.parametrize(
    ("found", "code"),
    [([OK, OK], 0), ([OK, WARN], 1), ([WARN, ERROR], 3), ([ERROR, FAIL, WARN], 2), ([], 0)],
)
def test_exit_code_is_the_worst_finding(found: list[Status], code: int) -> None:
    assert exit_code([Finding("x", "t", status, "") for status in found]) == code
