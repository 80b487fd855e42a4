"""lint-message's structural checks on real-shaped messages (pure: no SpamAssassin here)."""

from __future__ import annotations

import pytest

from monitor.content.lint import EX_DATAERR, EX_OK, EX_WARNINGS, exit_code, structural
from monitor.content.spamscore import SpamScore

GOOD = (
    b"From: Shop <news@shop.example.org>\r\n"
    b"To: you@example.net\r\n"
    b"Subject: December news\r\n"
    b"List-Unsubscribe: <https://shop.example.org/u/1>, <mailto:u@shop.example.org>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=shop.example.org; s=s1; b=AAAA\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b"\r\n'
    b"\r\n"
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Our December news, with the prices of the month. Unsubscribe any time.\r\n"
    b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<p>Our December news, with the prices of the month.</p><img src=x.png>"
    + b"<p>Winter coats, boots and scarves are back in every size, and we ship them free.</p>" * 6
    + b"<p>Unsubscribe any time.</p>\r\n--b--\r\n"
)
IMAGE_ONLY = (
    b"From: news@shop.example.org\r\nSubject: Look\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><head><style>p{}</style></head><body><img src=a.png><img src=b.png>"
    b"<p>Hi</p></body></html>\r\n"
)


def codes(raw: bytes, **kw) -> list[str]:
    return [f.code for f in structural(raw, **kw)]


def test_a_well_made_newsletter_has_no_findings():
    assert structural(GOOD, account_email="news@shop.example.org") == []


def test_image_only_html_without_text_part():
    found = structural(IMAGE_ONLY)
    assert [f.code for f in found] == ["MC_NO_TEXT_PART", "MC_IMAGE_ONLY_HTML"]
    assert found[1].text == "HTML has 2 image(s) and only 2 bytes of words"  # style not counted
    assert all(f.severity == "warning" and f.explanation for f in found)


def test_bulk_mail_needs_list_unsubscribe_with_one_click():
    no_header = GOOD.replace(b"List-Unsubscribe", b"X-Old")
    assert codes(no_header) == ["MC_NO_LIST_UNSUBSCRIBE"]  # "unsubscribe" in the text: bulk
    assert codes(no_header, bulk=False) == []
    no_post = GOOD.replace(b"List-Unsubscribe-Post", b"X-Old")
    (finding,) = structural(no_post)
    assert "One-Click" in finding.text
    assert codes(IMAGE_ONLY, bulk=True)[-1] == "MC_NO_LIST_UNSUBSCRIBE"


def test_from_and_dkim_must_align_with_the_account():
    assert codes(GOOD, account_email="alerts@other.example") == ["MC_FROM_NOT_ACCOUNT"]
    assert codes(GOOD, account_email="billing@shop.example.org") == []  # same domain
    foreign = GOOD.replace(b"d=shop.example.org", b"d=esp.example.com")
    (finding,) = structural(foreign)
    assert finding.code == "MC_DKIM_NOT_ALIGNED" and "esp.example.com" in finding.text
    parent = GOOD.replace(b"d=shop.example.org", b"d=example.org")  # relaxed alignment
    assert codes(parent) == []


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\x89PNG\r\n\x1a\n\x00", "MC_BROKEN_MIME"),
        (b"From: a@b.example\r\nContent-Type: multipart/mixed\r\n\r\nbody\r\n", "MC_BROKEN_MIME"),
        (b"From: a@b.example\r\n\r\n" + b"x" * (10 * 1024 * 1024), "MC_OVERSIZED"),
    ],
)
def test_unusable_messages_are_errors(raw, code):
    (finding,) = structural(raw)
    assert (finding.code, finding.severity) == (code, "error")


def test_exit_codes():
    spam = SpamScore("spamassassin", 9.0, 5.0, True)
    ham = SpamScore("spamassassin", 0.5, 5.0, False)
    assert exit_code([], None) == exit_code([], ham) == EX_OK
    assert exit_code(structural(IMAGE_ONLY), ham) == EX_WARNINGS
    assert exit_code([], spam) == EX_DATAERR
    assert exit_code(structural(b"\x00"), None) == EX_DATAERR
