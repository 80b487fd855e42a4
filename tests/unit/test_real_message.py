"""A route's own message as the canary: what changes on the way out, and the check-config lines
for files that cannot be sent (real files in a temp dir, loaded through the real loader)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest

from monitor.config.load import ConfigError, load_config
from monitor.content.message import MessageFileError, RouteContent, build, stamp
from monitor.core import canary

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
NEWSLETTER = (
    b"Received: from old.example.org by mx.example.net; Tue, 1 Dec 2026 10:00:00 +0000\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=shop.example.org; s=s1;\n"
    b"\tb=AAAA\n"
    b"From: Shop News <news@shop.example.org>\n"
    b"To: someone@example.net\n"
    b"Cc: boss@example.net\n"
    b"Subject: December deals\n"
    b"Date: Tue, 1 Dec 2026 09:59:00 +0000\n"
    b"Message-ID: <old@shop.example.org>\n"
    b"List-Unsubscribe: <https://shop.example.org/u/1>\n"
    b"MIME-Version: 1.0\n"
    b'Content-Type: multipart/alternative; boundary="b1"\n'
    b"\n"
    b"--b1\nContent-Type: text/plain; charset=utf-8\n\nDeals inside.\n"
    b"--b1\nContent-Type: text/html; charset=utf-8\n\n<p>Deals inside.</p>\n--b1--\n"
)


def test_stamp_changes_only_what_a_probe_owns_and_the_watcher_verifies_it():
    key = canary.new_key()
    token = canary.new_token(key, "news", NOW)
    wire = stamp(
        NEWSLETTER,
        recipient="seed@example.test",
        message_id="<fresh@shop.example.org>",
        date=NOW,
        token=str(token),
        route="news",
    )
    sent = message_from_bytes(wire, policy=policy.default)
    assert sent.get_all("To") == ["seed@example.test"]
    assert sent["Message-ID"] == "<fresh@shop.example.org>"
    assert sent["Date"].datetime == NOW
    assert sent["Cc"] is None and sent["Received"] is None and sent["DKIM-Signature"] is None
    assert sent["Subject"] == "December deals" and "mailcanary" not in sent["Subject"]
    assert sent["List-Unsubscribe"] == "<https://shop.example.org/u/1>"
    # The body is the user's, byte for byte (CRLF line ends); the token is in no part of it.
    assert wire.split(b"\r\n\r\n", 1)[1] == NEWSLETTER.split(b"\n\n", 1)[1].replace(b"\n", b"\r\n")
    assert str(token).encode() not in wire.split(b"\r\n\r\n", 1)[1]
    headers = BytesHeaderParser(policy=policy.compat32).parsebytes(wire)
    assert canary.verify_message(key, headers) == str(token)


def test_template_renders_escaped_html_with_its_text_twin(tmp_path: Path):
    template = tmp_path / "reset.html"
    template.write_text("<p>Reset for {{ recipient }} on {{ date.strftime('%Y-%m-%d') }}</p>\n")
    (tmp_path / "reset.txt").write_text("Reset for {{ recipient }}\n")
    content = RouteContent(template=template, subject="Reset {{ recipient }}")
    wire = build(
        content,
        sender="app@example.org",
        sender_name="App",
        recipient="a&b@example.test",
        message_id="<m@example.org>",
        date=NOW,
        token="t",
        route="reset",
    )
    sent = message_from_bytes(wire, policy=policy.default)
    assert sent["Subject"] == "Reset a&b@example.test"
    assert sent["From"].addresses[0].addr_spec == "app@example.org"
    assert sent.get_content_type() == "multipart/alternative"
    assert sent.get_body(("plain",)).get_content() == "Reset for a&b@example.test\r\n"
    html = sent.get_body(("html",)).get_content()
    assert html == "<p>Reset for a&amp;b@example.test on 2026-12-04</p>\r\n"


def test_a_file_broken_after_loading_fails_the_send_not_the_program(tmp_path: Path):
    gone = RouteContent(message=tmp_path / "gone.eml")
    with pytest.raises(MessageFileError, match=r"cannot read .*gone\.eml"):
        build(
            gone,
            sender="a@x.test",
            sender_name="a",
            recipient="b@x.test",
            message_id="<m@x.test>",
            date=NOW,
            token="t",
            route="r",
        )


CONFIG = """
[[accounts]]
name = "shop"
email = "news@shop.example.org"
password = "pw"
smtp = {{ host = "127.0.0.1", port = 587, security = "starttls" }}

[[accounts]]
name = "seed"
email = "seed@example.test"
password = "pw"
imap = {{ host = "127.0.0.1", port = 993, security = "tls" }}

[[routes]]
name = "news"
from = "shop"
to = ["seed"]
{route}
"""


def load(tmp_path: Path, route: str):
    path = tmp_path / "mailcanary.toml"
    path.write_text(CONFIG.format(route=route), encoding="utf-8")
    return load_config(path, env={})


def test_good_message_and_template_routes_load_with_absolute_paths(tmp_path: Path):
    # As some mail programs save it: an mbox separator line first.
    (tmp_path / "news.eml").write_bytes(
        b"From news@shop.example.org Tue Dec  1 09:59:00 2026\n" + NEWSLETTER
    )
    assert load(tmp_path, 'message = "news.eml"').routes[0].message == tmp_path / "news.eml"
    (tmp_path / "reset.html").write_text("<p>{{ recipient }}</p>")
    (route,) = load(tmp_path, 'message_template = "reset.html"\nsubject = "Reset"').routes
    assert (route.message_template, route.subject) == (tmp_path / "reset.html", "Reset")


@pytest.mark.parametrize(
    ("files", "route", "line"),
    [
        ({}, 'message = "none.eml"', r"routes\[0\] \(news\)\.message: cannot read .*none\.eml"),
        (
            {"pic.eml": b"\x89PNG\r\n\x1a\n\x00\x00"},
            'message = "pic.eml"',
            r"routes\[0\] \(news\)\.message: .*pic\.eml: not an RFC 5322 message",
        ),
        (
            {"note.eml": b"just some words\nand more\n"},
            'message = "note.eml"',
            r"\.message: .*note\.eml: not an RFC 5322 message",
        ),
        (
            {"m.eml": b"From: a@shop.example.org\nContent-Type: multipart/mixed\n\nx\n"},
            'message = "m.eml"',
            r"\.message: .*m\.eml: broken MIME: ",
        ),
        (
            {"f.eml": b"From: ceo@bank.example\nSubject: hi\n\nhello\n"},
            'message = "f.eml"',
            r"\.message: .*f\.eml: From <ceo@bank\.example> is neither the sending account's",
        ),
        (
            {"t.html": b"<p>{% if %}</p>"},
            'message_template = "t.html"\nsubject = "s"',
            r"\.message_template: .*t\.html line 1: template error",
        ),
        ({}, 'message_template = "t.html"', r"routes\[0\] \(news\)\.subject: subject and"),
        (
            {"a.eml": NEWSLETTER, "t.html": b""},
            'message = "a.eml"\nmessage_template = "t.html"\nsubject = "s"',
            r"routes\[0\] \(news\): set message or message_template, not both",
        ),
    ],
)
def test_bad_message_files_are_one_line_naming_the_route(tmp_path, files, route, line):
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, route)
    (problem,) = caught.value.problems
    assert "\n" not in problem
    assert re.search(line, problem), problem


def test_oversized_message_file_is_refused_before_reading(tmp_path: Path):
    big = tmp_path / "big.eml"
    with big.open("wb") as f:
        f.truncate(10 * 1024 * 1024 + 1)  # sparse: nothing is written
    with pytest.raises(ConfigError, match=r"\.message: .*big\.eml is 10\.0 MB, over the 10 MB"):
        load(tmp_path, 'message = "big.eml"')
