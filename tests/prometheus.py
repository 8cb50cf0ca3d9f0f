"""Prometheus for the tests: ``promtool`` and a real ``prometheus`` server (Debian's package, which ``make test``
installs), the support files they check, and the queries of the Grafana dashboard.

A server is started on a free loopback port with a data directory of the test's own, scraping only the targets
the test names, and stopped by its PID whatever happened.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.gate import skip_or_fail
from tests.integration.conftest import wait_for
from tests.net import LOOPBACK, free_port

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "support-files" / "prometheus" / "alerts.yml"
RULES_TEST = REPO / "support-files" / "prometheus" / "alerts_test.yml"
DASHBOARD = REPO / "support-files" / "grafana" / "bkmonitor-scheduler.json"
METRIC = re.compile(r"\bbkmonitor_[a-z_]+\b")


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        skip_or_fail(f"{name} is not installed (Debian's prometheus package; `make test` installs it as root)")
    return found


def dashboard_queries() -> list[tuple[str, str]]:
    """Every query of the dashboard: (panel title, PromQL)."""
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel.get("targets", [])]


def rule_expressions() -> list[tuple[str, str]]:
    """Every alert rule of alerts.yml: (alert name, PromQL), read as Prometheus reads them (promtool is the parser:
    this only lists them for queries)."""
    import yaml

    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [(rule["alert"], rule["expr"]) for group in groups for rule in group["rules"]]


def metric_names(expressions: list[tuple[str, str]]) -> set[str]:
    return {name for _, expr in expressions for name in METRIC.findall(expr)}


class PrometheusServer:
    """``prometheus`` scraping ``targets`` every second, with alerts.yml loaded."""

    def __init__(self, workdir: Path, targets: list[str]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "bkmonitor", "static_configs": [{"targets": targets}]}],
        }
        self.config = workdir / "prometheus.yml"
        self.config.write_text(json.dumps(config), encoding="utf-8")  # YAML is a superset of JSON
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusServer:
        cmd = [binary("prometheus"), f"--config.file={self.config}", f"--storage.tsdb.path={self.workdir / 'data'}",
               f"--web.listen-address={LOOPBACK}:{self.port}", "--storage.tsdb.retention.time=1h"]  # fmt: skip
        log = (self.workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_for(self.ready, 30, f"prometheus on {self.url} to be ready", (OSError,))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log()}")
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)

    def log(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")[-3000:]

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (a scalar result as one sample without labels)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def rules(self) -> Iterator[dict[str, Any]]:
        for group in self.api("rules")["groups"]:
            yield from group["rules"]

    def wait_scraped(self, timeout: float = 30) -> None:
        """Every target up, and scraped at least twice (so a rate over the range has two samples)."""
        wait_for(lambda: self.query("min(up) == 1 and min(count_over_time(up[1m])) >= 2"), timeout, "two scrapes")
