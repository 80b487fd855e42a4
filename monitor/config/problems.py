"""Problem lines: how a broken file table becomes the lines shown to the user.

Every line is led by its key path (`accounts[1] (alice).smtp.port: must be 1..65535, got 0`).
Validators raise `problem(reason, got=value)`; what was found is shown only as `excerpt()`
(short, printable) and never under a key whose name looks secret-ish (`_SECRETISH`: a
password typed into `auth` or an `oauth` key stays unseen). Values of unknown keys are never
shown. Pydantic's own error kinds are reworded in TOML's terms and name only the type of what
was found, never the value: it may be a secret typed into the wrong key.
"""

from __future__ import annotations

import difflib
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError


class ConfigError(Exception):
    """The file cannot be used; `problems` holds one line per problem, `str()` all of them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


_NOTHING = object()
# Key names whose values are never shown, even as an excerpt: they hold secrets or URLs that
# may carry one, and what is typed into them by mistake is often a password.
_SECRETISH = re.compile(r"pass|secret|token|credential|auth|url|database|key", re.IGNORECASE)
EXCERPT = 40  # characters of a found value shown in a problem line


def problem(message: str, got: object = _NOTHING) -> PydanticCustomError:
    """A validation error: `message` follows the key path; `, got <excerpt of got>` is added
    unless the key looks secret-ish."""
    context: dict[str, Any] = {"reason": message}
    if got is not _NOTHING:
        context["got"] = excerpt(got)
    return PydanticCustomError("config", "{reason}", context)


def excerpt(value: object) -> str:
    """What a problem line may show of a found value: at most EXCERPT printable characters
    (a 5 MB value makes no 5 MB line, control characters cannot move the terminal's cursor);
    a string in quotes, a number as TOML writes it, anything else by its type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= EXCERPT else f"{text[:EXCERPT]}… ({len(text)} digits)"
    if not isinstance(value, str):
        return toml_type(value)
    shown = "".join(c if c.isprintable() else "?" for c in value[:EXCERPT])
    if len(value) > EXCERPT:
        return f'"{shown}…" ({len(value)} characters)'
    return f'"{shown}"'


def table_label(prefix: str, index: int, name: object) -> str:
    """`accounts[2] (alice)`: the table's name is added only when it is a short plain name,
    so a pasted secret or a huge value never leads every line about that table."""
    plain = isinstance(name, str) and len(name) <= EXCERPT and re.fullmatch(r"[\w.@+-]+", name)
    return f"{prefix}[{index}]" + (f" ({name})" if plain else "")


def secretish(where: str) -> bool:
    """Does the key path name a secret-ish key? (Table names in parentheses do not count.)"""
    return bool(_SECRETISH.search(re.sub(r" \([^)]*\)", "", where)))


def toml_type(value: object) -> str:
    """The TOML word for a parsed value's type, for "must be X, got Y" messages."""
    names = {bool: "boolean", int: "integer", float: "float", str: "string"}
    names |= {list: "array", dict: "table"}
    return names.get(type(value), type(value).__name__)


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "an array",
    "model_type": "a table",
    "dict_type": "a table",
    "model_attributes_type": "a table",
}
_M = TypeVar("_M", bound=BaseModel)


@dataclass
class Checked(Generic[_M]):
    """A file table after validation: the model (if any), problem lines, keys set aside."""

    model: _M | None
    problems: list[str] = field(default_factory=list)
    dropped: set[str] = field(default_factory=set)


def check_table(
    model: type[_M], raw: dict[str, Any], prefix: str, placeholders: dict[str, Any]
) -> Checked[_M]:
    """Validate `raw`; on errors also build the model without the bad keys (required ones
    replaced by `placeholders`) so the caller can still check what is left."""
    try:
        return Checked(model.model_validate(raw))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    problems = [_error_line(model, prefix, error) for error in errors]
    dropped = {str(error["loc"][0]) for error in errors if error["loc"]}
    rest = {k: v for k, v in raw.items() if k not in dropped}
    rest |= {k: v for k, v in placeholders.items() if k in dropped}
    try:
        return Checked(model.model_validate(rest), problems, dropped)
    except ValidationError:
        return Checked(None, problems, dropped)


def toml_syntax_line(path: Path, text: str, message: str) -> str:
    """`FILE:LINE:COL: message` from a TOMLDecodeError's text (3.11 has no lineno/colno)."""
    found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if found:
        return f"{path}:{found[1]}:{found[2]}: {message[: found.start()]}"
    end = re.search(r"\s*\(at end of document\)$", message)
    if end:
        lines = text.split("\n")
        return f"{path}:{len(lines)}:{len(lines[-1]) + 1}: {message[: end.start()]}"
    return f"{path}: {message}"


def key_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            plain = len(part) <= EXCERPT and re.fullmatch(r"[A-Za-z0-9_-]+", part)
            key = part if plain else excerpt(part)
            out = f"{out}.{key}" if out else key
    return out


def unknown_key_line(where: str, key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"{where}: unknown key" + (f'; did you mean "{close[0]}"?' if close else "")


def _keys_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed in the table at `loc` below `model` (for "did you mean")."""
    for part in loc:
        info = {f.alias or n: f for n, f in model.model_fields.items()}.get(str(part))
        if info is None:
            return []
        options = (info.annotation, *typing.get_args(info.annotation))
        nested = [t for t in options if isinstance(t, type) and issubclass(t, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return [f.alias or n for n, f in model.model_fields.items()]


def _error_line(model: type[BaseModel], prefix: str, error: Any) -> str:
    loc, kind = tuple(error["loc"]), error["type"]
    where = key_path(prefix, loc)
    if kind == "config":
        context = error["ctx"]
        shown = "got" in context and not secretish(where)
        return f"{where}: {context['reason']}" + (f", got {context['got']}" if shown else "")
    if kind == "extra_forbidden":
        return unknown_key_line(where, str(loc[-1]), _keys_at(model, loc[:-1]))
    if kind == "missing":
        return f"{where}: required key is missing"
    if kind in _EXPECTED:
        return f"{where}: must be {_EXPECTED[kind]}, got {toml_type(error['input'])}"
    if kind == "too_short":
        return f"{where}: must not be empty"
    return f"{where}: {error['msg']}"  # pydantic's own wording; it does not quote the input
