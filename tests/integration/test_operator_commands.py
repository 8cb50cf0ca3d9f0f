"""One malformed crontab entry must not block the operator commands. Beat skips the entry (and logs it); Django's
system checks (``manage.py check``) report it as an error and refuse to run any command that asks for them, so every
command an operator needs then — start, stop, status, render, ring, exporter, health, schedule — skips them and runs.
Each runs here as an operator runs it: ``manage.py`` in a process of its own, with the bad entry in its environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, wait_for
from tests.metrics import scrape
from tests.net import free_port
from tests.processes import stop_group

BAD = {"BKAPP_SETTINGS_ACTION_TASK_CRONTAB": '[["a.job", "* * *", "cluster"]]'}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=os.environ | BAD | env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_check_reports_the_entry() -> None:
    result = manage("check", env={})
    assert result.returncode == 1
    assert "bkmonitor.E001" in result.stderr and "bad cron '* * *'" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("hash_ring",), 0, "single-node mode"),
        (("render_supervisor", "--check"), 0, "supervisord accepts it"),
        (("render_saas_supervisor", "--check"), 0, "supervisord accepts it"),
        # Nothing runs in this run dir: the LSB "not running" status, and the reason.
        (("platform", "status"), 3, "supervisord is not running"),
        (("platform", "stop"), 0, "supervisord is not running"),
    ],
)
def test_operator_commands_run_despite_it(args: tuple[str, ...], code: int, says: str, tmp_path: Path) -> None:
    result = manage(*args, env={"BKM_RUN_DIR": str(tmp_path / "run")})
    assert result.returncode == code, result.stderr
    assert says in result.stdout + result.stderr
    assert "SystemCheckError" not in result.stderr and "E001" not in result.stderr


@pytest.mark.parametrize("args", [("platform", "start"), ("render_supervisor", "--check"), ("hash_ring",)])
def test_what_must_stop_them_still_does(args: tuple[str, ...], tmp_path: Path) -> None:
    # The other checks still run: with Consul, a loopback ring address would make every host the same ring member.
    run_dir = {"BKM_RUN_DIR": str(tmp_path / "run")}
    try:
        result = manage(*args, env=run_dir | {"CONSUL_HOST": "127.0.0.1", "BK_MONITOR_HOST_ADDR": "127.0.0.1"})
        assert result.returncode == 1, result.stdout + result.stderr
        assert "bkmonitor.E003" in result.stderr and "127.0.0.1, a loopback address" in result.stderr
        assert "E001" not in result.stderr  # the malformed entry is not what stopped it
        assert not (tmp_path / "run").exists()  # stopped before it did anything
    finally:
        if (tmp_path / "run").exists():  # a platform that should not have started: stop it, whatever failed
            manage("platform", "stop", env=run_dir)


def test_the_exporter_serves_despite_it(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "exporter.log"
    env = os.environ | BAD | {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "manage.py", "metrics_exporter", "--port", str(port)], cwd=REPO,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        wait_for(lambda: "serving the metrics" in log.read_text() or proc.poll() is not None, 30, "the exporter")
        assert proc.poll() is None, log.read_text()
        # Nothing written yet, and no supervisord behind it: a valid page with only supervisord's up gauge, 0.
        assert scrape(port) == {("bkmonitor_supervisor_up", ()): 0.0}
    finally:
        stop_group(proc, grace=10)
