from datetime import UTC, datetime

from monitor.core.imapwire import parse_fetch, parse_opened, parse_status, uid_batches

HEADER = bytearray(b"Subject: hi\r\nX-Mailcanary-Token: t\r\n\r\n")


def test_fetch_items_in_any_order_around_the_literal():
    lines = [
        b'1 FETCH (UID 7 INTERNALDATE "28-Nov-2026 21:00:05 +0200" BODY[HEADER] {40}',
        HEADER,
        b")",
        b"2 FETCH (BODY[HEADER] {40}",  # some servers put UID and the date after the literal
        HEADER,
        b' UID 9 INTERNALDATE " 3-Dec-2026 09:01:02 +0000")',
        b"3 FETCH (FLAGS (\\Seen))",  # unsolicited: no literal, not a message
        b"FETCH completed",
    ]
    first, second = parse_fetch(lines)
    assert (first.uid, second.uid) == (7, 9)
    assert first.internal_date == datetime(2026, 11, 28, 19, 0, 5, tzinfo=UTC)
    assert second.internal_date == datetime(2026, 12, 3, 9, 1, 2, tzinfo=UTC)
    assert first.headers["X-Mailcanary-Token"] == "t"


def test_uid_batches_are_sorted_unique_and_bounded():
    batches = uid_batches([5, 3, 3, *range(100, 250)])
    assert batches[0].startswith("3,5,100,")
    assert sum(len(b.split(",")) for b in batches) == 152
    assert all(len(b.split(",")) <= 100 for b in batches)


def test_a_select_answer_gives_size_uidvalidity_and_uidnext():
    lines = [
        b"FLAGS (\\Answered \\Seen)",
        b"12 EXISTS",
        b"0 RECENT",
        b"OK [UIDVALIDITY 1700000001] UIDs valid",
        b"OK [UIDNEXT 40] Predicted next UID",
        b"[READ-ONLY] Examine completed (0.001 + 0.000 secs).",
    ]
    assert parse_opened(lines) == (12, 1700000001, 40)
    assert parse_opened([b"OK [UIDVALIDITY 7] x", b"Select completed."]) == (0, 7, None)


def test_a_status_answer_in_either_order_and_a_localized_name():
    assert parse_status([b'"&BCEEPwQwBDw-" (UIDNEXT 16 UIDVALIDITY 1764876543)']) == (
        1764876543,
        16,
    )
    assert parse_status([b"Junk (UIDVALIDITY 3 UIDNEXT 1)"]) == (3, 1)
    assert parse_status([b"Junk (MESSAGES 4)"]) is None
