from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default

from monitor.core import canary

KEY = bytes(range(32))
NOW = datetime(2026, 11, 28, 20, 0, 5, 123456, tzinfo=UTC)


def _message(route: str = "alice->bob", token: canary.Token | None = None, **fields: str) -> bytes:
    token = token or canary.new_token(KEY, route, NOW)
    values = {"sender": "alice@example.test", "recipient": "bob@example.test"}
    values |= {"sender_name": "alice", "recipient_name": "bob"}
    values |= {"message_id": canary.new_message_id("alice@example.test")} | fields
    return canary.build_message(token=token, route=route, **values)


def test_message_is_crlf_plain_text_with_token_in_header_and_subject():
    raw = _message()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    msg = message_from_bytes(raw, policy=default)
    token = msg[canary.TOKEN_HEADER]
    assert token in msg["Subject"]
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().strip()
    assert msg["Message-ID"].endswith("@example.test>")
    assert canary.verify_message(KEY, msg) == token


def test_token_times_are_whole_seconds_utc():
    token = canary.new_token(KEY, "r", NOW)
    assert token.sent_at == NOW.replace(microsecond=0)
    assert canary.parse_token(str(token)) == token


def test_look_alikes_never_verify():
    msg = message_from_bytes(_message("alice->bob"), policy=default)
    genuine = msg[canary.TOKEN_HEADER]
    # the same token claimed for another route
    msg.replace_header(canary.ROUTE_HEADER, "mallory->bob")
    assert canary.verify_message(KEY, msg) is None
    # another key
    msg.replace_header(canary.ROUTE_HEADER, "alice->bob")
    assert canary.verify_message(bytes(32), msg) is None
    # a tampered time
    cid, unix, mac = genuine.split(".")
    msg.replace_header(canary.TOKEN_HEADER, f"{cid}.{int(unix) + 1}.{mac}")
    assert canary.verify_message(KEY, msg) is None
    # garbage and absence
    msg.replace_header(canary.TOKEN_HEADER, "not-a-token")
    assert canary.verify_message(KEY, msg) is None
    del msg[canary.TOKEN_HEADER]
    assert canary.verify_message(KEY, msg) is None


def test_unicode_route_survives_header_encoding():
    raw = _message("алиса->боб")
    assert b"\xd0" not in raw.split(b"\r\n\r\n")[0]  # headers stay 7-bit on the wire
    for policy in (default, None):
        msg = message_from_bytes(raw) if policy is None else message_from_bytes(raw, policy=policy)
        assert canary.verify_message(KEY, msg) is not None


def test_plain_canaries_are_the_bytes_email_message_writes():
    # The daemon writes plain canaries itself (cheaper); they must be byte for byte what
    # email.message writes, which is also the path for anything that needs encoding.
    cases = [  # the first two are plain
        ("alice->bob", "alice@example.test", "bob@example.test", "alice", "bob"),
        ("r.1+x@y", "a.b-c+d@mx-1.example.test", "x_y%z@example.test", "Zoë", "ボブ"),
        ("алиса->боб", "alice@example.test", "bob@example.test", "alice", "bob"),  # encoded
        ("a b", "alice@example.test", "bob@example.test", "alice", "bob"),  # a space
        ("r", "Alice <alice@example.test>", "bob@example.test", "a\nb", "b" * 120),
        ("r", "alice@example.test", "bøb@example.test", "alice", "bob"),
    ]
    for n, (route, sender, recipient, sender_name, recipient_name) in enumerate(cases):
        token = canary.new_token(KEY, route, NOW)
        message_id = canary.new_message_id(sender)
        names = {"sender_name": sender_name, "recipient_name": recipient_name}
        raw = _message(
            route, token, sender=sender, recipient=recipient, message_id=message_id, **names
        )
        assert canary._plain(route, sender, recipient, message_id) == (n < 2)
        body = canary._body(token, route, sender, recipient, sender_name, recipient_name)
        assert raw == canary._with_policy(token, route, sender, recipient, message_id, body)
        msg = message_from_bytes(raw, policy=default)
        assert canary.verify_message(KEY, msg) == str(token)
        assert msg.get_content().replace("\r\n", "\n") == body
