"""Bad input caught when the config is loaded: every duration in its range, files that cannot
hang or flood the loader, values shown only as short safe excerpts, no route for probe/run."""

from __future__ import annotations

import os
import sys
import typing
from pathlib import Path

import pytest
import trustme
from pydantic import BaseModel

from monitor.config import alert_file, file_models, oauth_file, report_file
from monitor.config.file_models import Within
from monitor.config.load import ConfigError, load_config
from monitor.core.durations import DurationRange, parse_duration
from tests.unit.test_config import SECRET, write

BASE = """
[[accounts]]
name = "alice"
email = "alice@example.test"
password_env = "PW"
smtp = { host = "127.0.0.1", port = 587, security = "starttls" }

[[accounts]]
name = "bob"
email = "bob@example.test"
password_env = "PW"
imap = { host = "127.0.0.1", port = 993, security = "tls" }
"""
ROUTE = '\n[[routes]]\nfrom = "alice"\nto = ["bob"]\n'


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    path = write(tmp_path, "mailcanary.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"PW": "pw", **(env or {})})
    return caught.value.problems


# ---------------------------------------------------------------- durations


def _file_models() -> list[type[BaseModel]]:
    modules = (file_models, alert_file, report_file, oauth_file)
    found = {v for m in modules for v in vars(m).values() if isinstance(v, type)}
    return [m for m in found if issubclass(m, BaseModel) and m.model_config.get("strict")]


def _floats(annotation: object, ranged: bool = False) -> list[bool]:
    """For every float inside `annotation`: does a Within range come with it?"""
    if annotation is float:
        return [ranged]
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        has = any(isinstance(extra, Within) for extra in args[1:])
        return _floats(args[0], ranged or has)
    return [flag for arg in args for flag in _floats(arg, ranged)]


def test_every_float_key_is_a_duration_with_a_range_and_a_default_inside_it() -> None:
    models = _file_models()
    assert {"MonitorFile", "RouteFile", "AlertsFile", "AlertWebhookFile", "DnsFile"} <= {
        m.__name__ for m in models
    }
    checked = 0
    for model in models:
        for name, field in model.model_fields.items():
            ranged = any(isinstance(extra, Within) for extra in field.metadata)
            flags = _floats(field.annotation, ranged)
            assert all(flags), f"{model.__name__}.{name}: a float without a duration range"
            for extra in field.metadata:
                if isinstance(extra, Within) and isinstance(field.default, float):
                    assert extra.bounds.check(field.default) == field.default
            checked += len(flags)
    assert checked >= 12  # interval … remind_every: the keys this test is about were seen


DURATION_KEYS = [
    # (key path in the problem line, TOML that sets it to {v}, range)
    ("monitor.interval", "[monitor]\ninterval = {v}\n" + BASE + ROUTE, "1s..7d"),
    ("monitor.deadline", "[monitor]\ndeadline = {v}\n" + BASE, "5s..1d"),
    ("monitor.poll_interval", "[monitor]\npoll_interval = {v}\n" + BASE, "1s..1h"),
    ("monitor.smtp_timeout", "[monitor]\nsmtp_timeout = {v}\n" + BASE, "1s..10m"),
    ("monitor.drain_timeout", "[monitor]\ndrain_timeout = {v}\n" + BASE, "1s..10m"),
    ("dns.timeout", "[dns]\ntimeout = {v}\n" + BASE, "100ms..1m"),
    (
        "accounts[2] (carol).imap.timeout",
        BASE + '[[accounts]]\nname = "carol"\nemail = "c@x.test"\npassword_env = "PW"\n'
        'imap = { host = "127.0.0.1", security = "tls", timeout = {v} }\n',
        "1s..10m",
    ),
    ("routes[0].interval", BASE + ROUTE + "interval = {v}\n", "1s..7d"),
    ("alerts.slow_after", BASE + "[alerts]\nslow_after = {v}\n", "1s..1d"),
    ("alerts.remind_every", BASE + "[alerts]\nremind_every = {v}\n", '1m..30d, or "0" for never'),
    (
        "alerts.webhook[0].timeout",
        BASE + '[[alerts.webhook]]\nurl = "http://127.0.0.1:9/x"\ntimeout = {v}\n',
        "1s..2m",
    ),
]
BAD_DURATIONS = ["nan", "inf", "-inf", "1e30", '"99999999999999w"', '"1ms"', "-5", '"{}s"']


@pytest.mark.parametrize(("key", "template", "bounds"), DURATION_KEYS)
def test_every_duration_key_refuses_non_finite_huge_and_tiny_values(
    tmp_path: Path, key: str, template: str, bounds: str
) -> None:
    for value in BAD_DURATIONS:
        value = value.format("9" * 400)  # a number too big for a float: inf after parsing
        found = problems(tmp_path, template.replace("{v}", value))
        assert len(found) == 1, (value, found)
        line = found[0]
        assert line.startswith(f"{key}: "), (value, line)
        assert f"must be {bounds}, got" in line or f"({bounds}), got" in line, (value, line)
        assert len(found[0]) < 200


def test_duration_lines_say_the_range_and_the_edges_are_accepted(tmp_path: Path) -> None:
    assert problems(tmp_path, '[monitor]\ninterval = "1ms"\n' + BASE) == [
        'monitor.interval: must be 1s..7d, got "1ms"'
    ]
    assert problems(tmp_path, "[monitor]\ndeadline = nan\n" + BASE) == [
        "monitor.deadline: must be a finite duration (5s..1d), got nan"
    ]
    edges = (
        '[monitor]\ninterval = "10s"\ndeadline = "1d"\npoll_interval = 1\n'
        + BASE
        + ROUTE
        + 'interval = "7d"\n[alerts]\nremind_every = 0\nslow_after = "1s"\n'
    )
    cfg = load_config(write(tmp_path, "edges.toml", edges), {"PW": "pw"})
    assert (cfg.monitor.interval, cfg.monitor.deadline, cfg.monitor.poll_interval) == (
        10.0,
        86400.0,
        1.0,
    )
    assert (cfg.routes[0].interval, cfg.alerts.remind_every) == (7 * 86400.0, 0.0)


def test_a_route_to_a_server_elsewhere_needs_ten_seconds(tmp_path: Path) -> None:
    remote = BASE.replace('imap = { host = "127.0.0.1"', 'imap = { host = "imap.example.test"')
    assert problems(tmp_path, '[monitor]\ninterval = "9s"\n' + remote + ROUTE) == [
        "routes[0].interval: must be at least 10s for a server not on this machine "
        '("imap.example.test"), got 9.0s (monitor.interval)'
    ]
    assert problems(tmp_path, remote + ROUTE + 'interval = "2s"\n') == [
        "routes[0].interval: must be at least 10s for a server not on this machine "
        '("imap.example.test"), got 2.0s'
    ]
    cfg = load_config(
        write(tmp_path, "ok.toml", remote + ROUTE + 'interval = "10s"\n'), {"PW": "x"}
    )
    assert cfg.routes[0].interval == 10.0
    loopback = load_config(write(tmp_path, "lo.toml", BASE + ROUTE + "interval = 1\n"), {"PW": "x"})
    assert loopback.routes[0].interval == 1.0  # a stack on this machine (tests, the demo)


def test_parse_duration_refuses_what_is_no_duration_without_quoting_it() -> None:
    for text in (float("nan"), float("inf"), "9" * 400 + "w", "1e3", "soon"):
        with pytest.raises(ValueError) as caught:
            parse_duration(text)
        assert str(text)[:5] not in str(caught.value)
    assert parse_duration("1h30m") == 5400.0
    with pytest.raises(ValueError, match=r"must be 1s\.\.1h$"):
        DurationRange(1, 3600).check(0)


# ---------------------------------------------------------------- zones, files, directories


def test_a_zone_database_directory_is_an_unknown_time_zone(tmp_path: Path) -> None:
    assert problems(tmp_path, BASE + '[reports]\ntimezone = "Europe"\n') == [
        'reports.timezone: unknown time zone; use an IANA name like "Europe/Athens" or "UTC", '
        'got "Europe"'
    ]


def test_ca_files_must_load_as_ca_bundles(tmp_path: Path) -> None:
    garbage = write(tmp_path, "garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n")
    fifo = tmp_path / "fifo.pem"
    os.mkfifo(fifo)
    found = problems(
        tmp_path,
        '[monitor]\nca_file = "garbage.pem"\n'
        + BASE.replace(
            'password_env = "PW"\nimap', 'password_env = "PW"\nca_file = "fifo.pem"\nimap'
        ),
    )
    assert len(found) == 2
    assert found[0].startswith(f"monitor.ca_file: {garbage} is not a PEM CA bundle")
    assert found[1] == f"accounts[1] (bob).ca_file: cannot read {fifo}: not a regular file (a FIFO)"

    good = write(tmp_path, "good.pem", trustme.CA().cert_pem.bytes().decode())
    cfg = load_config(
        write(tmp_path, "ok.toml", f'[monitor]\nca_file = "{good}"\n' + BASE), {"PW": "x"}
    )
    assert cfg.account("alice").ca_files == (good,)


def test_a_state_dir_that_cannot_be_created_is_a_problem(tmp_path: Path) -> None:
    plain = write(tmp_path, "plain", "x")
    assert problems(tmp_path, '[monitor]\nstate_dir = "plain/state"\n' + BASE) == [
        f"monitor.state_dir: cannot create {plain}/state: {plain} is not a directory"
    ]
    assert problems(tmp_path, '[monitor]\nstate_dir = "plain"\n' + BASE) == [
        f"monitor.state_dir: {plain} is not a directory"
    ]
    cfg = load_config(
        write(tmp_path, "ok.toml", '[monitor]\nstate_dir = "new/deeper"\n' + BASE), {"PW": "x"}
    )
    assert cfg.monitor.state_dir == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_files_are_read_only_when_regular_and_small(tmp_path: Path) -> None:
    big = write(tmp_path, "big.toml", "# padding\n" * 110_000)
    with pytest.raises(ConfigError) as caught:
        load_config(big, {})
    assert caught.value.problems == [f"{big}: cannot read: larger than 1 MiB"]
    with pytest.raises(ConfigError) as device:
        load_config("/dev/zero", {})
    assert device.value.problems == [
        "/dev/zero: cannot read: not a regular file (a character device)"
    ]

    write(tmp_path, "long-secret", "x" * 70_000)
    account = BASE.replace('password_env = "PW"\nimap', 'password_file = "{f}"\nimap')
    for name, reason in (
        ("long-secret", "larger than 64 KiB"),
        ("/dev/zero", "not a regular file (a character device)"),
    ):
        path = name if name.startswith("/") else f"{tmp_path}/{name}"
        assert problems(tmp_path, account.replace("{f}", name)) == [
            f"accounts[1] (bob).password_file: cannot read {path}: {reason}"
        ]


# ---------------------------------------------------------------- what a line may show


def test_lines_show_short_excerpts_and_nothing_of_secretish_or_unknown_keys(tmp_path: Path) -> None:
    huge = "x" * 150_000  # five of them: just under the 1 MiB a config file may have
    found = problems(
        tmp_path,
        BASE.replace('"bob@example.test"', f'"{huge}"').replace('"alice"', f'"a {huge}"', 1)
        + f'[reports]\ntimezone = "Europe/\\u001b[2J{huge}"\n'
        + f'[[routes]]\nfrom = "alice"\nto = ["{huge}"]\n'
        + f'[[accounts]]\nname = "dora"\nemail = "d@x.test"\nauth = "{SECRET}"\n'
        + f'imap = {{ host = "h", security = "tls", pasword = "{SECRET}" }}\n'
        + f'"{huge}" = 1\n',
        {"PW": "pw"},
    )
    cut = '"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…" (150000 characters)'
    assert found == [
        "accounts[0].name: must be letters, digits and . _ @ + - only, "
        f'got "a {"x" * 38}…" (150002 characters)',
        f"accounts[1] (bob).email: must be an email address, got {cut}",
        'accounts[2] (dora).auth: must be "password" or "xoauth2"',
        "accounts[2] (dora).imap.pasword: unknown key",
        f"accounts[2] (dora).{cut}: unknown key",
        'routes[0].from: unknown account "alice"',
        f"routes[0].to[0]: unknown account {cut}",
        'reports.timezone: unknown time zone; use an IANA name like "Europe/Athens" or "UTC", '
        'got "Europe/?[2Jxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…" (150011 characters)',
    ]
    assert SECRET not in "\n".join(found)


# ---------------------------------------------------------------- routes, database driver


def test_no_routes_passes_loading_but_not_require_routes(tmp_path: Path) -> None:
    empty = write(tmp_path, "empty.toml", "")
    cfg = load_config(empty, {})
    assert cfg.warnings == ["routes: none configured; nothing will be sent"]
    with pytest.raises(ConfigError) as caught:
        cfg.require_routes()
    assert caught.value.problems == [
        f"routes: none in {empty}; probe and run need at least one [[routes]] table"
    ]
    load_config(write(tmp_path, "one.toml", BASE + ROUTE), {"PW": "x"}).require_routes()


def test_postgresql_without_its_driver_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = f'[monitor]\ndatabase = "postgresql://canary:{SECRET}@db.test/canary"\n' + BASE
    load_config(write(tmp_path, "pg.toml", text), {"PW": "x"})  # asyncpg is in the test venv
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # what `import` sees when it is absent
    assert problems(tmp_path, text) == [
        "monitor.database: postgresql needs asyncpg: pip install 'mailcanary[postgresql]'"
    ]
