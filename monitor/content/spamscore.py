"""A receiver's content verdict, read from the spam-filter headers recorded with each probe.

`parse_scores(headers)` turns the recorded (name, value) pairs (see `monitor.core.receipt`:
the first copy of each, whitespace collapsed) into one `SpamScore` per filter found:
- SpamAssassin: `X-Spam-Status` (Yes/No, score=, required=, tests=), points per rule from
  `X-Spam-Report` (the `* 1.7 RULE description` lines), `X-Spam-Score`, `X-Spam-Flag`;
- rspamd: `X-Spamd-Result` (`default: False [2.40 / 15.00]; SYMBOL(points)[options]; …`),
  `X-Rspamd-Score`, `X-Rspamd-Action`;
- Microsoft: `X-Forefront-Antispam-Report` (SCL, SFV, CAT), `X-Microsoft-Antispam` (BCL),
  `X-MS-Exchange-Organization-SCL`.

Pure and forgiving: header values come from the outside world; what cannot be read is left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.content.rules import explain

# Microsoft's scale: SCL 5-6 is spam, 7-9 high-confidence spam; -1 skipped filtering.
MS_SPAM_SCL = 5.0
MS_SPAM_VERDICTS = frozenset({"SPM", "HSPM", "PHSH", "HPHSH", "BULK", "SPOOF", "MALW"})

_NUMBER = r"-?\d+(?:\.\d+)?"
_SA_SCORE = re.compile(rf"\b(?:score|hits)=({_NUMBER})")
_SA_REQUIRED = re.compile(rf"\brequired=({_NUMBER})")
# Rule names are upper case; the next lower-case key (autolearn=, version=) ends the list.
_SA_TESTS = re.compile(r"\btests=(.*?)(?=\s+[a-z_]+=|$)")
_SA_REPORT_LINE = re.compile(
    rf"(?:^|\s)\*\s+({_NUMBER})\s+([A-Z0-9_]+)\s+(.*?)(?=\s\*\s+{_NUMBER}\s|$)"
)
_RSPAMD_HEAD = re.compile(rf"^\s*[\w-]+:\s*(True|False)\s*\[\s*({_NUMBER})\s*/\s*({_NUMBER})\s*\]")
_RSPAMD_SYMBOL = re.compile(rf"([A-Z0-9_]+)\(({_NUMBER})\)(?:\[([^\]]*)\])?")


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule the filter matched: `points` as it counted them (None when it did not say)."""

    name: str
    points: float | None = None
    detail: str = ""  # the filter's own description, or rspamd's options

    @property
    def explanation(self) -> str | None:
        return explain(self.name)


@dataclass(frozen=True, slots=True)
class SpamScore:
    """`threshold` is the number the filter itself compares against, as it reports it
    (SpamAssassin: required; rspamd: its reject score; Microsoft: SCL 5)."""

    filter: str  # "spamassassin", "rspamd", "microsoft"
    score: float | None
    threshold: float | None
    spam: bool | None  # the filter's own yes/no where it gives one
    rules: tuple[Rule, ...] = ()

    def top_rules(self, count: int = 3) -> tuple[Rule, ...]:
        """The rules that pushed hardest towards spam (positive points, largest first)."""
        scored = [r for r in self.rules if r.points is not None and r.points > 0]
        return tuple(sorted(scored, key=lambda r: -(r.points or 0.0))[:count])


def parse_scores(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> list[SpamScore]:
    if not headers:
        return []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found: dict[str, str] = {}
    for name, value in pairs:
        found.setdefault(name.lower(), " ".join(str(value).split()))
    scores = [_rspamd(found), _spamassassin(found), _microsoft(found)]
    return [score for score in scores if score is not None]


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    return match.group(1) if match else None


# ------------------------------------------------------------------- SpamAssassin


def _spamassassin(h: dict[str, str]) -> SpamScore | None:
    status, report = h.get("x-spam-status", ""), h.get("x-spam-report", "")
    flag, score_header = h.get("x-spam-flag"), h.get("x-spam-score")
    if not (status or report or score_header or flag):
        return None
    # rspamd's milter writes a short X-Spam-Status of its own: that one is rspamd's verdict.
    if status and "required=" not in status and "tests=" not in status and _is_rspamd(h):
        return None
    points = {name: (float(p), desc.strip()) for p, name, desc in _SA_REPORT_LINE.findall(report)}
    names = list(points)
    tests = _first(_SA_TESTS, status)
    for test in (t.strip() for t in (tests or "").split(",")):
        name, _, given = test.partition("=")
        if name and name.lower() != "none" and name not in points:
            names.append(name)
            if _float(given) is not None:
                points[name] = (float(given), "")
    rules = tuple(Rule(n, *points[n]) if n in points else Rule(n) for n in names)
    spam: bool | None = None
    if status[:3].lower() == "yes" or (flag or "").upper().startswith("YES"):
        spam = True
    elif status[:2].lower() == "no" or (flag or "").upper().startswith("NO"):
        spam = False
    score = _float(_first(_SA_SCORE, status)) or _float(score_header)
    if score is None and points:
        score = round(sum(p for p, _ in points.values()), 1)
    threshold = _float(_first(_SA_REQUIRED, status))
    return SpamScore("spamassassin", score, threshold, spam, rules)


# ------------------------------------------------------------------- rspamd


def _is_rspamd(h: dict[str, str]) -> bool:
    return "x-spamd-result" in h or any(key.startswith("x-rspamd-") for key in h)


def _rspamd(h: dict[str, str]) -> SpamScore | None:
    if not _is_rspamd(h):
        return None
    result = h.get("x-spamd-result", "")
    score = threshold = None
    spam: bool | None = None
    head = _RSPAMD_HEAD.search(result)
    if head:
        spam = head.group(1) == "True"
        score, threshold = float(head.group(2)), float(head.group(3))
    score = score if score is not None else _float(h.get("x-rspamd-score"))
    action = h.get("x-rspamd-action", "").lower()
    if spam is None and action:
        spam = action not in ("no action", "greylist")
    rules = tuple(
        Rule(name, float(points), (options or "").strip())
        for name, points, options in _RSPAMD_SYMBOL.findall(result[head.end() if head else 0 :])
    )
    if score is None and not rules and spam is None:
        return None
    return SpamScore("rspamd", score, threshold, spam, rules)


# ------------------------------------------------------------------- Microsoft


def _fields(value: str) -> dict[str, str]:
    pairs = (part.split(":", 1) for part in value.split(";") if ":" in part)
    return {key.strip().upper(): val.strip() for key, val in pairs}


def _microsoft(h: dict[str, str]) -> SpamScore | None:
    forefront = _fields(h.get("x-forefront-antispam-report", ""))
    antispam = _fields(h.get("x-microsoft-antispam", ""))
    scl = _float(forefront.get("SCL")) if "SCL" in forefront else None
    if scl is None:
        scl = _float(h.get("x-ms-exchange-organization-scl", "").strip() or None)
    if scl is None and not forefront and "BCL" not in antispam:
        return None
    rules: list[Rule] = []
    for key in ("SFV", "CAT"):
        if forefront.get(key) and forefront[key].upper() != "NONE":
            rules.append(Rule(f"{key}:{forefront[key].upper()}"))
    if antispam.get("BCL"):
        rules.append(Rule(f"BCL:{antispam['BCL']}"))
    verdicts = {forefront.get("SFV", "").upper(), forefront.get("CAT", "").upper()}
    spam: bool | None = None
    if scl is not None or verdicts - {""}:
        spam = (scl is not None and scl >= MS_SPAM_SCL) or bool(verdicts & MS_SPAM_VERDICTS)
    return SpamScore("microsoft", scl, MS_SPAM_SCL, spam, tuple(rules))


# ------------------------------------------------------------------- shapes for faces


def score_json(scores: Iterable[SpamScore]) -> list[dict[str, Any]]:
    return [
        {
            "filter": s.filter,
            "score": s.score,
            "threshold": s.threshold,
            "spam": s.spam,
            "rules": [
                {
                    "name": r.name,
                    "points": r.points,
                    "detail": r.detail or None,
                    "explanation": r.explanation,
                }
                for r in s.rules
            ],
        }
        for s in scores
    ]


def _number(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def brief(scores: Iterable[SpamScore], rules: int = 2) -> str:
    """One short line per probe, e.g. `spamassassin 7.2/5 HTML_IMAGE_ONLY_04 +1.7`."""
    parts = []
    for s in scores:
        text = f"{s.filter} {_number(s.score)}/{_number(s.threshold)}"
        top = s.top_rules(rules) or tuple(r for r in s.rules if r.points is None)[:rules]
        if top:
            text += " " + ", ".join(
                r.name if r.points is None else f"{r.name} +{r.points:g}" for r in top
            )
        parts.append(text)
    return "; ".join(parts)
