"""A local SpamAssassin's opinion of a message, for `lint-message`: spamc or spamassassin.

With a spamd address, `spamc` asks that daemon (fast: its rules are loaded). Otherwise the
`spamassassin` script scores the message itself (a few seconds: it loads the rules each
time). Local rules only, no network tests, nothing learnt. Headers come back as the
receivers' do and are read by `monitor.content.spamscore`.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32

from monitor.content.spamscore import SpamScore, parse_scores

_LOCAL_ONLY = (
    "use_bayes 0",
    "bayes_auto_learn 0",
    "report_safe 0",
    "add_header all Report _REPORT_",
)


@dataclass(frozen=True, slots=True)
class Opinion:
    score: SpamScore | None
    note: str  # what was asked ("spamc 127.0.0.1:783", "spamassassin 4.0.1") or why nothing


def score(raw: bytes, *, spamd: tuple[str, int] | None = None, timeout: float = 60) -> Opinion:
    if spamd is not None:
        program = shutil.which("spamc")
        if program is None:
            return Opinion(None, "spamc is not installed")
        host, port = spamd
        # -x: no "safe fallback" (the message back unscored) when spamd cannot be reached.
        argv = [program, "-x", "-d", host, "-p", str(port), "-s", str(len(raw) + 1024)]
        label = f"spamc {host}:{port}"
    else:
        program = shutil.which("spamassassin")
        if program is None:
            return Opinion(None, "SpamAssassin is not installed (spamassassin, spamc)")
        argv = [program, "--local", "--nocreate-prefs"]
        argv += [f"--cf={line}" for line in _LOCAL_ONLY]
        label = "spamassassin --local"
    try:
        done = subprocess.run(argv, input=raw, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Opinion(None, f"{label}: {exc}")
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()
        return Opinion(None, f"{label} exited with {done.returncode}: {why[-1] if why else ''}")
    headers = BytesHeaderParser(policy=compat32).parsebytes(done.stdout)
    found = [s for s in parse_scores(headers.items()) if s.filter == "spamassassin"]
    return Opinion(found[0] if found else None, label)
