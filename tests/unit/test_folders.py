"""Folder names (modified UTF-7), LIST replies as real servers send them, and which folder is
the spam folder."""

from __future__ import annotations

import pytest

from monitor.core.folders import (
    Folder,
    choose_spam_folder,
    decode_mailbox,
    encode_mailbox,
    parse_list_line,
    parse_list_lines,
    quote,
    quote_mailbox,
)

# (decoded, modified UTF-7): RFC 3501 §5.1.3's own example, and names providers use.
KNOWN_ENCODINGS = [
    ("Спам", "&BCEEPwQwBDw-"),
    ("&", "&-"),
    ("Tom & Jerry", "Tom &- Jerry"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("Courrier indésirable", "Courrier ind&AOk-sirable"),
    ("[Gmail]/Spam", "[Gmail]/Spam"),
    ("Nevyžádaná pošta", "Nevy&AX4A4Q-dan&AOE- po&AWE-ta"),
]


@pytest.mark.parametrize(("decoded", "encoded"), KNOWN_ENCODINGS)
def test_modified_utf7_both_ways(decoded: str, encoded: str) -> None:
    assert encode_mailbox(decoded) == encoded
    assert decode_mailbox(encoded) == decoded


@pytest.mark.parametrize("name", ["😀 emoji & more", "a/b.c|d", "日本語&English&日本語", " lead"])
def test_round_trip(name: str) -> None:
    encoded = encode_mailbox(name)
    assert encoded.isascii()
    assert encoded.count("/") == name.count("/")  # hierarchy stays readable
    assert decode_mailbox(encoded) == name


def test_invalid_utf7_is_shown_as_sent() -> None:
    # Some servers store raw UTF-8 or broken names; better shown verbatim than crash.
    assert decode_mailbox("&!!!-") == "&!!!-"
    assert decode_mailbox("Bjørn") == "Bjørn"


def test_quote_mailbox() -> None:
    assert quote_mailbox("inbox") == "INBOX"
    assert quote_mailbox("Спам") == '"&BCEEPwQwBDw-"'
    assert quote_mailbox('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'
    raw = Folder("Спам", "&BCEEPwQwBDw-", "|", frozenset())
    assert quote_mailbox(raw) == '"&BCEEPwQwBDw-"'
    assert quote_mailbox("a\r\nb") == '"a&AA0ACg-b"'  # control characters go base64
    with pytest.raises(ValueError):  # a raw CR LF would end the command line
        quote("a\r\nb")


def test_dovecot_list_lines_as_aioimaplib_returns_them() -> None:
    # aioimaplib strips "* LIST "; a name sent as a literal comes as the next item.
    lines = [
        b'(\\HasNoChildren \\Junk) "/" "&BCEEPwQwBDw-"',
        b'(\\HasNoChildren) "/" INBOX',
        b'(\\HasChildren \\Noselect) "/" {9}',
        bytearray(b'Odd "dir"'),
        b"List completed (0.001 + 0.000 + 0.001 secs).",
    ]
    spam, inbox, odd = parse_list_lines(lines)
    assert (spam.name, spam.raw, spam.delimiter) == ("Спам", "&BCEEPwQwBDw-", "/")
    assert spam.flags == {"\\HasNoChildren", "\\Junk"}
    assert (inbox.name, inbox.flags) == ("INBOX", {"\\HasNoChildren"})
    assert (odd.name, odd.selectable) == ('Odd "dir"', False)


def test_gmail_list_line() -> None:
    folder = parse_list_line(b'* LIST (\\HasNoChildren \\Junk) "/" "[Gmail]/Spam"')
    assert folder == Folder(
        "[Gmail]/Spam", "[Gmail]/Spam", "/", frozenset({"\\HasNoChildren", "\\Junk"})
    )
    assert folder.leaf == "Spam"


def test_yandex_list_line_with_pipe_delimiter() -> None:
    folder = parse_list_line('* LIST (\\Unmarked \\HasNoChildren \\junk) "|" "&BCEEPwQwBDw-"')
    assert folder is not None
    assert (folder.name, folder.delimiter) == ("Спам", "|")
    assert "\\Junk" in folder.flags  # flags are case-insensitive; one spelling kept


def test_outlook_and_other_shapes() -> None:
    outlook = parse_list_line(b'(\\HasNoChildren \\Junk) "/" "Junk Email"')
    assert outlook is not None and outlook.name == "Junk Email"
    no_delimiter = parse_list_line(b"(\\Noinferiors) NIL Archive")
    assert no_delimiter == Folder("Archive", "Archive", None, frozenset({"\\NoInferiors"}))
    backslash = parse_list_line(b'() "\\\\" "Shared\\\\Junk"')
    assert backslash is not None and (backslash.delimiter, backslash.name) == ("\\", "Shared\\Junk")
    assert parse_list_line(b"List completed.") is None
    assert parse_list_line(b'(\\HasNoChildren) "/"') is None


def _folder(name: str, *flags: str, delimiter: str = "/") -> Folder:
    return Folder(name, encode_mailbox(name), delimiter, frozenset(flags))


def test_choose_override_first_and_never_second_guessed() -> None:
    folders = [_folder("INBOX"), _folder("Junk", "\\Junk"), _folder("Werbung")]
    chosen, reason = choose_spam_folder(folders, override="werbung", hint="Junk")
    assert chosen == folders[2] and "configured" in reason
    missing, reason = choose_spam_folder(folders, override="Nope", hint=None)
    assert missing is None and "Nope" in reason


def test_choose_junk_flag_before_hint_and_names() -> None:
    folders = [_folder("Spam"), _folder("Bulk Mail"), _folder("Спам", "\\Junk")]
    chosen, reason = choose_spam_folder(folders, override=None, hint="Bulk Mail")
    assert chosen is not None and chosen.name == "Спам" and "\\Junk" in reason


def test_choose_hint_before_known_names() -> None:
    folders = [_folder("INBOX"), _folder("Junk"), _folder("Bulk Mail")]
    chosen, reason = choose_spam_folder(folders, override=None, hint="Bulk Mail")
    assert chosen is not None and chosen.name == "Bulk Mail" and "preset" in reason


def test_choose_known_names_case_insensitive_after_decoding() -> None:
    folders = [_folder("INBOX"), _folder("Archive/Spam"), _folder("СПАМ")]
    chosen, _ = choose_spam_folder(folders, override=None, hint="Junk")  # hint absent here
    assert chosen is not None and chosen.name == "СПАМ"  # a whole name beats a leaf
    nested = [_folder("INBOX"), _folder("INBOX.Junk E-mail", delimiter=".")]
    chosen, _ = choose_spam_folder(nested, override=None, hint=None)
    assert chosen is not None and chosen.name == "INBOX.Junk E-mail"


def test_choose_skips_unselectable_and_reports_none() -> None:
    folders = [_folder("INBOX"), _folder("Junk", "\\Junk", "\\Noselect"), _folder("Work")]
    chosen, reason = choose_spam_folder(folders, override=None, hint=None)
    assert chosen is None and reason
