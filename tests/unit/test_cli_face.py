"""What a person sees of the CLI: global options anywhere, flags without type labels, data
printed as it is (never eaten as rich markup), details cut between words."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from monitor.cli.argv import global_options, hoist_global_options
from monitor.cli.tables import shorten

CONFIG = """
[monitor]
state_dir = "{state}"
database = "sqlite:///{state}/mailcanary.db"

[[accounts]]
name = "a"
email = "a@example.test"
smtp = {{ host = "127.0.0.1", port = 2525, security = "starttls" }}
password = "inline-for-the-test"

[[accounts]]
name = "b"
email = "b@example.test"
imap = {{ host = "127.0.0.1", port = 1143, security = "tls" }}
password = "inline-for-the-test"

[[routes]]
name = "r"
from = "a"
to = ["b"]
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def test_global_options_after_the_command_move_in_front() -> None:
    assert hoist_global_options(["check-config", "--config", "x.toml"]) == [
        "--config",
        "x.toml",
        "check-config",
    ]
    assert hoist_global_options(["status", "-v", "--json", "--config=y.toml"]) == [
        "-v",
        "--config=y.toml",
        "status",
        "--json",
    ]
    # Before the command they stay; after `--` nothing is touched.
    assert hoist_global_options(["-c", "a", "probe", "--", "--config"]) == [
        "-c",
        "a",
        "probe",
        "--",
        "--config",
    ]


def test_detail_is_cut_between_words_not_inside_a_port() -> None:
    text = "connect_failed (connect): could not connect to ('127.0.0.1', 59489): refused"
    cut = shorten(text, 60)
    assert len(cut) <= 60 and cut.endswith("…")
    assert "5948" not in cut  # the port is either whole or gone
    assert shorten("short", 60) == "short"


def test_help_shows_no_bool_labels_and_status_documents_its_exit_codes(tmp_path: Path) -> None:
    top = cli("--help", cwd=tmp_path)
    assert top.returncode == 0 and "--verbose" in top.stdout and "<bool>" not in top.stdout
    assert "[web] auth" in top.stdout  # help text is not rich markup either
    status = cli("status", "--help", cwd=tmp_path)
    assert "check_failed" in status.stdout and "78 bad config" in status.stdout


def test_config_after_the_command_and_brackets_printed_as_they_are(tmp_path: Path) -> None:
    config = tmp_path / "mc.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state"), encoding="utf-8")
    checked = cli("check-config", "--config", str(config), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert f"{config}: ok" in checked.stdout
    # No channels: the message names the TOML tables, brackets and all.
    tested = cli("test-alert", "-c", str(config), cwd=tmp_path)
    assert tested.returncode == 1
    assert "([[alerts.email]], [[alerts.webhook]])" in tested.stdout


def test_an_empty_report_says_which_period_it_read(tmp_path: Path) -> None:
    config = tmp_path / "mc.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state"), encoding="utf-8")
    assert cli("-c", str(config), "db", "upgrade", cwd=tmp_path).returncode == 0
    report = cli("-c", str(config), "report", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    said = [
        line for line in report.stderr.splitlines() if line.startswith("mailcanary: no canaries")
    ]
    assert len(said) == 1 and "the last full week" in said[0] and "--since" in said[0]


def test_commands_that_send_refuse_a_config_without_routes(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text(f'[monitor]\nstate_dir = "{tmp_path / "state"}"\n', encoding="utf-8")
    assert cli("-c", str(empty), "check-config", cwd=tmp_path).returncode == 0
    for command in ("probe", "run"):
        done = cli("-c", str(empty), command, cwd=tmp_path)
        assert done.returncode == 78, (command, done.stderr)
        assert "routes: none in" in done.stderr
    nagios = cli("-c", str(empty), "probe", "--nagios", cwd=tmp_path)
    assert nagios.returncode == 3 and nagios.stdout.startswith("MAILCANARY UNKNOWN - bad config")


def test_deadline_option_has_the_config_keys_range(tmp_path: Path) -> None:
    config = tmp_path / "mc.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state"), encoding="utf-8")
    for value in ("1e30", "nan", "1ms"):
        done = cli("-c", str(config), "probe", "--deadline", value, cwd=tmp_path)
        assert done.returncode == 2, (value, done.stderr)
        assert done.stderr.splitlines()[-1].startswith("mailcanary: --deadline:")


def test_history_says_which_database_it_read_and_creates_none(tmp_path: Path) -> None:
    config = tmp_path / "mc.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state"), encoding="utf-8")
    done = cli("-c", str(config), "history", cwd=tmp_path)
    database = tmp_path / "state" / "mailcanary.db"
    assert done.returncode == 0
    assert f"no probes recorded yet: {database} does not exist" in done.stderr
    assert not database.exists()
    assert cli("-c", str(config), "db", "upgrade", cwd=tmp_path).returncode == 0
    empty = cli("-c", str(config), "history", "--json", cwd=tmp_path)
    assert empty.stdout == "" and f"no probes in sqlite:///{database}" in empty.stderr


# status --nagios is answered by the console script before typer loads (entry.py): it must
# say exactly what the typer command says, without the libraries that made it cost more than
# a Nagios check may (issue #17: 0.2 CPU-s; bench/oneshot.py measures it). None of these is
# needed to read SQLite.
HEAVY = {"typer", "rich", "asyncio", "jinja2", "sqlalchemy", "ssl"}


def run(
    via: str, *args: str, cwd: Path | None = None, importtime: bool = False
) -> subprocess.CompletedProcess:
    """The console script's `main` (entry) or the one every command had before (app)."""
    code = f"import sys; sys.argv[1:] = {list(args)!r}; from monitor.cli.{via} import main; main()"
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run(
        [sys.executable, *flags, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def imported(done: subprocess.CompletedProcess) -> set[str]:
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[1].strip() for line in lines}


def test_only_global_options_before_the_command_take_the_short_way() -> None:
    nagios = ["status", "--nagios"]
    assert global_options(["--config", "x.toml", "-v", *nagios]) == (Path("x.toml"), True, nagios)
    assert global_options(["--config=y.toml", *nagios]) == (Path("y.toml"), False, nagios)
    assert global_options(nagios) == (None, False, nagios)
    # What only typer can answer (a usage error, help, an option given twice) goes to typer.
    for args in (["--config"], ["--help", *nagios], ["-c", "a", "--config", "b", *nagios]):
        assert global_options(args) is None, args
    assert global_options(["--verbose=yes", *nagios]) is None
    assert global_options(["-c=y.toml", *nagios]) is None  # click reads the file "=y.toml"
    assert global_options(["-c", "", *nagios]) is None


def test_status_nagios_says_what_the_typer_command_says_without_its_libraries(
    tmp_path: Path,
) -> None:
    state, secret = tmp_path / "state", tmp_path / "secret"
    secret.write_text("not-inline\n", encoding="utf-8")
    secret.chmod(0o600)
    config, broken, warned = (tmp_path / f"{name}.toml" for name in ("mc", "broken", "warned"))
    inline = CONFIG.format(state=state)
    config.write_text(
        inline.replace('password = "inline-for-the-test"', f'password_file = "{secret}"')
    )
    upgraded = cli("-c", str(config), "db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    broken.write_text(config.read_text().replace("[[routes]]", "colour = 1\n[[routes]]"))
    warned.write_text(inline)
    never = "MAILCANARY UNKNOWN - 0/1 inbox; never: r:b | 'delivery_r:b'=U;;;0;"
    expected = {
        config: (3, never),
        broken: (3, "MAILCANARY UNKNOWN - bad config (see stderr)"),
        warned: (3, never),
    }
    said = {}
    for path, (code, line) in expected.items():
        short = run("entry", "status", "--nagios", "--config", str(path), cwd=tmp_path)
        typer = run("app", "--config", str(path), "status", "--nagios", cwd=tmp_path)
        assert (short.returncode, short.stdout) == (code, line + "\n"), short.stderr
        assert (typer.returncode, typer.stdout, typer.stderr) == (
            short.returncode,
            short.stdout,
            short.stderr,
        )
        said[path] = short.stderr
    # Problems and warnings (inline passwords) reach stderr as every command prints them.
    assert said[broken] == "accounts[1] (b).colour: unknown key\n"
    assert said[warned].startswith("warning: accounts[0] (a).password: plaintext password")
    assert said[config] == ""
    loaded = imported(run("entry", "-c", str(config), "status", "--nagios", importtime=True))
    assert "monitor.adapters.quickread" in loaded and not loaded & HEAVY, loaded & HEAVY
