"""Mailbox names and LIST replies, and which folder is the spam folder.

IMAP sends folder names in modified UTF-7 (RFC 3501 §5.1.3) and aioimaplib leaves both that
and the LIST syntax to us. Everything here is pure so it can be tested without a server.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

JUNK = "\\Junk"
NOSELECT = "\\Noselect"
NONEXISTENT = "\\NonExistent"

# Flags are case-insensitive on the wire; keep one spelling so `"\\Junk" in folder.flags` works.
_CANONICAL_FLAGS = {
    flag.lower(): flag
    for flag in (
        "\\Noselect",
        "\\NoInferiors",
        "\\NonExistent",
        "\\HasChildren",
        "\\HasNoChildren",
        "\\Marked",
        "\\Unmarked",
        "\\Subscribed",
        "\\Remote",
        "\\All",
        "\\Archive",
        "\\Drafts",
        "\\Flagged",
        "\\Junk",
        "\\Sent",
        "\\Trash",
        "\\Important",
    )
}

# Names providers and clients give the spam folder, most common first.
KNOWN_SPAM_NAMES: tuple[str, ...] = (
    "Junk",
    "Junk Email",
    "Junk E-mail",
    "Junk Mail",
    "Spam",
    "Bulk Mail",
    "Bulk",
    "[Gmail]/Spam",
    "[Google Mail]/Spam",
    "Спам",
    "Нежелательная почта",
    "Spamverdacht",
    "Junk-E-Mail",
    "Courrier indésirable",
    "Indésirables",
    "Correo no deseado",
    "Posta indesiderata",
    "Nevyžádaná pošta",
    "Ongewenste e-mail",
    "Skräppost",
    "Søppelpost",
    "Uønsket e-mail",
    "Roskaposti",
    "Wiadomości-śmieci",
    "Lixo eletrônico",
    "Lixo Eletrónico",
    "Ανεπιθύμητα",
    "Önemsiz",
    "迷惑メール",
    "垃圾邮件",
)


@dataclass(frozen=True, slots=True)
class Folder:
    """One mailbox as LIST reported it."""

    name: str  # decoded, as a human reads it ("Спам")
    raw: str  # as the server spells it ("&BCEEPwQwBDw-"); what commands must send
    delimiter: str | None
    flags: frozenset[str]

    @property
    def selectable(self) -> bool:
        return NOSELECT not in self.flags and NONEXISTENT not in self.flags

    @property
    def leaf(self) -> str:
        """The last path component ("Spam" of "[Gmail]/Spam")."""
        if self.delimiter and self.delimiter in self.name:
            return self.name.rsplit(self.delimiter, 1)[1]
        return self.name


# ---------------------------------------------------------------- modified UTF-7


def _b64_utf16(text: str) -> str:
    data = base64.b64encode(text.encode("utf-16-be")).decode("ascii")
    return data.rstrip("=").replace("/", ",")


def encode_mailbox(name: str) -> str:
    """A decoded mailbox name in modified UTF-7."""
    out: list[str] = []
    pending: list[str] = []  # a run of characters that must go base64

    def flush() -> None:
        if pending:
            out.append("&" + _b64_utf16("".join(pending)) + "-")
            pending.clear()

    for char in name:
        if "\x20" <= char <= "\x7e":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


_SHIFTED = re.compile(r"&([^-]*)-")


def decode_mailbox(raw: str) -> str:
    """A modified UTF-7 name decoded; a name that is not valid mUTF-7 is returned unchanged."""

    def shifted(match: re.Match[str]) -> str:
        payload = match.group(1)
        if not payload:
            return "&"
        data = payload.replace(",", "/")
        data += "=" * (-len(data) % 4)
        decoded = base64.b64decode(data, validate=True)
        if len(decoded) % 2:
            raise ValueError("odd UTF-16 length")
        return decoded.decode("utf-16-be")

    try:
        return _SHIFTED.sub(shifted, raw)
    except (ValueError, UnicodeDecodeError):
        # Some servers (and users with old clients) store raw UTF-8: show what is there.
        return raw


# ---------------------------------------------------------------- quoting


def quote(text: str) -> str:
    """An IMAP quoted string."""
    if any(c in text for c in "\r\n\x00"):
        raise ValueError("CR, LF and NUL cannot be sent in an IMAP string")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_mailbox(name: str | Folder) -> str:
    """A mailbox argument for a command: a Folder's raw name, or a decoded name encoded."""
    if isinstance(name, Folder):
        return quote(name.raw)
    if name.upper() == "INBOX":
        return "INBOX"
    return quote(encode_mailbox(name))


# ---------------------------------------------------------------- LIST replies

_LIST_HEAD = re.compile(rb"^(?:\*\s+)?(?:X?LIST|LSUB)\s+", re.IGNORECASE)
_LITERAL_END = re.compile(rb"\{(\d+)\+?\}$")


def _as_bytes(line: bytes | bytearray | str) -> bytes:
    return line.encode("utf-8") if isinstance(line, str) else bytes(line)


def _read_string(data: bytes, pos: int) -> tuple[bytes | None, int]:
    """A quoted string, NIL or atom at `pos`; returns (value, position after it)."""
    if data.startswith(b'"', pos):
        out = bytearray()
        pos += 1
        while pos < len(data):
            char = data[pos : pos + 1]
            if char == b"\\" and pos + 1 < len(data):
                out += data[pos + 1 : pos + 2]
                pos += 2
            elif char == b'"':
                return bytes(out), pos + 1
            else:
                out += char
                pos += 1
        raise ValueError("unterminated quoted string")
    end = data.find(b" ", pos)
    end = len(data) if end < 0 else end
    atom = data[pos:end]
    if not atom:
        raise ValueError("missing string")
    return (None if atom.upper() == b"NIL" else atom), end


def parse_list_line(line: bytes | bytearray | str, literal: bytes | None = None) -> Folder | None:
    """One LIST reply line (with or without `* LIST `), or None if it is not one.

    A name sent as a literal (`{5}`) comes separately as `literal`.
    """
    data = _LIST_HEAD.sub(b"", _as_bytes(line).strip(b"\r\n"), count=1)
    if not data.startswith(b"("):
        return None
    close = data.find(b")")
    if close < 0:
        return None
    flags = frozenset(
        _CANONICAL_FLAGS.get(flag.lower(), flag)
        for flag in data[1:close].decode("ascii", errors="replace").split()
    )
    try:
        pos = close + 1
        while data[pos : pos + 1] == b" ":
            pos += 1
        delimiter, pos = _read_string(data, pos)
        rest = data[pos:].strip()
        if literal is not None and _LITERAL_END.fullmatch(rest):
            raw = literal
        elif rest:
            raw, _ = _read_string(rest, 0)
        else:
            return None
    except ValueError:
        return None
    if raw is None:
        return None
    raw_text = raw.decode("utf-8", errors="replace")
    return Folder(
        name=decode_mailbox(raw_text),
        raw=raw_text,
        delimiter=delimiter.decode("utf-8", errors="replace") if delimiter else None,
        flags=flags,
    )


def parse_list_lines(lines: Iterable[bytes | bytearray | str]) -> list[Folder]:
    """All folders in a LIST response, in order; a `{n}` line takes the next item as the name.

    Lines that are not LIST data (the tagged status, unsolicited responses) are skipped.
    """
    items = [_as_bytes(line) for line in lines]
    folders: list[Folder] = []
    index = 0
    while index < len(items):
        line = items[index]
        literal = None
        if _LITERAL_END.search(line.rstrip(b"\r\n")) and index + 1 < len(items):
            literal = items[index + 1]
            index += 1
        folder = parse_list_line(line, literal)
        if folder is not None:
            folders.append(folder)
        index += 1
    return folders


# ---------------------------------------------------------------- the spam folder


def _fold(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def _by_name(folders: Sequence[Folder], wanted: str) -> Folder | None:
    """The folder with that decoded (or raw) name: exact first, then ignoring case."""
    candidates = [f for f in folders if f.selectable]
    for folder in candidates:
        if wanted in (folder.name, folder.raw):
            return folder
    for folder in candidates:
        if _fold(wanted) in (_fold(folder.name), _fold(folder.raw)):
            return folder
    return None


def choose_spam_folder(
    folders: Sequence[Folder], override: str | None, hint: str | None
) -> tuple[Folder | None, str]:
    """The spam folder and why it was chosen (or why none was).

    Order: the user's override (never second-guessed: if it does not exist, no folder) → the
    special-use `\\Junk` flag → the provider preset's name → well-known names in many languages.
    """
    if override:
        folder = _by_name(folders, override)
        if folder is None:
            return None, f"the configured spam folder {override!r} does not exist"
        return folder, f"configured spam_folder {override!r}"
    for folder in folders:
        if folder.selectable and JUNK in folder.flags:
            return folder, f"special-use \\Junk flag on {folder.name!r}"
    if hint:
        folder = _by_name(folders, hint)
        if folder is not None:
            return folder, f"provider preset name {hint!r}"
    selectable = [f for f in folders if f.selectable]
    # Whole names first so "Junk" beats "Archive/Spam"; then the last component ("INBOX.Junk").
    for key in (lambda f: f.name, lambda f: f.leaf):
        for known in KNOWN_SPAM_NAMES:
            for folder in selectable:
                if _fold(key(folder)) == _fold(known):
                    return folder, f"well-known spam folder name {folder.name!r}"
    return None, "no folder has the \\Junk flag or a known spam folder name"
