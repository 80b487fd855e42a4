"""A private Prometheus for tests: Debian's binary, a temp dir, a free loopback port."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.support import free_port, wait_for

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
MISSING = (
    None
    if PROMTOOL and PROMETHEUS
    else "promtool/prometheus not found: install Debian's `prometheus` package (./dev does)"
)


def promtool(*args: str, cwd: Path | None = None, stdin: str | None = None) -> str:
    """Run promtool; fails the test with its output unless it exits 0. Returns the output."""
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"promtool {' '.join(args)} exited {done.returncode}:\n{output}")
    return output


def fast_rules(rules: Path, target: Path, duration: str) -> Path:
    """A copy of a rules file with every `for:` set to `duration`, for a test's short clock."""
    text, count = re.subn(r"^(\s+for: )\S+$", rf"\g<1>{duration}", rules.read_text(), flags=re.M)
    assert count > 0, f"no for: clause in {rules}"
    target.write_text(text)
    return target


class Prometheus:
    """Scrapes `targets` as job "mailcanary" every second and evaluates `rules` every second."""

    def __init__(self, directory: Path, targets: list[str], rules: Path):
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / "prometheus.log"
        quoted = ", ".join(f'"{t}"' for t in targets)
        self.config = directory / "prometheus.yml"
        self.config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f'rule_files: ["{rules}"]\n'
            "scrape_configs:\n  - job_name: mailcanary\n"
            f"    static_configs:\n      - targets: [{quoted}]\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def start(self, ready_within: float = 30) -> None:
        assert PROMETHEUS is not None
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=sink,
                stderr=sink,
                cwd=self.directory,
            )
        wait_for(self._ready, ready_within, "Prometheus to be ready")

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"prometheus exited {self.proc.returncode}:\n{self.tail()}")
        try:
            return self.http.get("/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        self.http.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path>; fails the test unless Prometheus answers status "success"."""
        answer = self.http.get(f"/api/v1/{path}", params=params)
        body = answer.json()
        if answer.status_code != 200 or body.get("status") != "success":
            pytest.fail(f"Prometheus /api/v1/{path} {params}: {answer.status_code} {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        return data["result"]

    def alerts(self) -> list[dict[str, Any]]:
        return self.api("alerts")["alerts"]
