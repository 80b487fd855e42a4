"""What changed in the DNS posture between runs, and the runs kept in the state directory
(a real file in a private temp dir)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.adapters import posture_log
from monitor.dnscheck.history import Change, changes
from monitor.dnscheck.policy import FAIL, OK, WARN, Finding

T0 = datetime(2026, 11, 9, 6, 0, tzinfo=UTC)
SPF = Finding("spf", "example.org", OK, "v=spf1 mx -all")
DMARC = Finding("dmarc", "example.org", WARN, "p=none")
LISTED = Finding("dnsbl", "192.0.2.25", FAIL, "listed on zen.spamhaus.org")
CLEAN = Finding("dnsbl", "192.0.2.25", OK, "not listed")
DKIM = Finding("dkim", "s1._domainkey.example.org", OK, "2048-bit RSA key")


def test_a_listing_that_appears_a_check_added_and_one_gone_are_changes() -> None:
    found = changes([SPF, DMARC, CLEAN, DKIM], [SPF, DMARC, LISTED, Finding("mx", "x", OK, "")])
    assert found == (
        Change("dnsbl", "192.0.2.25", "ok", "fail"),
        Change("mx", "x", None, "ok"),
        Change("dkim", "s1._domainkey.example.org", "ok", None),
    )
    assert found[0].text == "dnsbl 192.0.2.25: ok → fail"
    # A new text with the same verdict is not a change.
    assert changes([DMARC], [Finding("dmarc", "example.org", WARN, "p=none; rua=…")]) == ()


def test_runs_are_kept_and_the_newest_before_a_moment_is_found(tmp_path) -> None:
    assert posture_log.last_before(tmp_path, T0) == {}  # no file yet: nothing to compare
    assert posture_log.record(tmp_path, T0 - timedelta(days=7), {"alice": [SPF, CLEAN]})
    assert posture_log.record(tmp_path, T0 - timedelta(days=1), {"alice": [SPF, LISTED]})
    assert posture_log.record(tmp_path, T0 + timedelta(days=1), {"alice": [SPF, CLEAN]})
    assert posture_log.record(tmp_path, T0 - timedelta(days=3), {"bob": [DMARC]})
    before = posture_log.last_before(tmp_path, T0)
    assert before["alice"] == (T0 - timedelta(days=1), [SPF, LISTED])
    assert before["bob"] == (T0 - timedelta(days=3), [DMARC])
    assert [p.name for p in tmp_path.iterdir()] == [posture_log.FILE]  # no temp file left


def test_a_damaged_file_reads_as_empty_and_an_unwritable_one_is_reported(tmp_path) -> None:
    (tmp_path / posture_log.FILE).write_text("{not json")
    assert posture_log.last_before(tmp_path, T0) == {}
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    assert posture_log.record(blocked, T0, {"alice": [SPF]}) is False
