"""``manage.py metrics_exporter``: serves the sum of what the host's processes wrote, forgets the live gauges of the
dead, stops on SIGTERM, and says clearly why it cannot start."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from alarm_backends.core.prometheus.exporter import clear, forget_dead
from tests.integration.conftest import wait_for
from tests.metrics import scrape, value
from tests.net import LOOPBACK, free_port
from tests.processes import stop_group

REPO = Path(__file__).resolve().parents[2]
# A beat-like process: counts a failover, leads, and either exits at once or stays until it is stopped.
WRITER = """
import sys, time
from patches.redbeat.observe import beat_metrics
beat_metrics().failovers.inc()
beat_metrics().leader.set(1)
print("written", flush=True)
if sys.argv[1] == "stay":
    time.sleep(120)
"""


def writer(metrics: Path, mode: str) -> subprocess.Popen[bytes]:
    env = os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, mode], cwd=REPO, env=env, stdout=subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"written\n"
    return proc


@pytest.fixture
def metrics(tmp_path: Path) -> Path:
    path = tmp_path / "metrics"
    clear(path)
    return path


@pytest.fixture
def exporter(metrics: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port = free_port()
    log = tmp_path / "exporter.log"
    env = os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "metrics_exporter", "--port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: "serving the metrics" in log.read_text(), 30, "the exporter to listen")
        yield proc, port, log
    finally:
        stop_group(proc, grace=10)


def test_serves_the_sum_of_every_process_and_only_live_gauges(
    exporter: tuple[subprocess.Popen[bytes], int, Path], metrics: Path
) -> None:
    proc, port, log = exporter
    gone = writer(metrics, "exit")
    gone.wait(30)
    staying = writer(metrics, "stay")
    try:
        samples = scrape(port)
        # Both counted a failover; the counter of the process that ended still counts.
        assert value(samples, "bkmonitor_beat_failovers_total") == 2
        # The leader gauge sums live processes only: the one that exited was forgotten at this scrape.
        assert value(samples, "bkmonitor_beat_leader") == 1
        assert not (metrics / f"gauge_livesum_{gone.pid}.db").exists()
        assert (metrics / f"gauge_livesum_{staying.pid}.db").exists()
    finally:
        stop_group(staying, grace=5)
    # Killed: its gauge is gone at the next scrape (no beat runs: no leader sample at all), its counter stays.
    samples = scrape(port)
    assert ("bkmonitor_beat_leader", ()) not in samples and value(samples, "bkmonitor_beat_failovers_total") == 2

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert log.read_text().rstrip().endswith("stopped")


def test_forget_dead_leaves_live_processes_and_other_files_alone(metrics: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    dead_pid = int(dead.stdout)
    for name in (f"gauge_livesum_{dead_pid}.db", f"gauge_liveall_{os.getpid()}.db", f"counter_{dead_pid}.db"):
        (metrics / name).write_bytes(b"")
    assert forget_dead(metrics) == [dead_pid]
    assert sorted(p.name for p in metrics.iterdir()) == [f"counter_{dead_pid}.db", f"gauge_liveall_{os.getpid()}.db"]
    assert clear(metrics) == 2 and list(metrics.iterdir()) == []


def test_errors_name_what_is_wrong(metrics: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(CommandError, match="PROMETHEUS_MULTIPROC_DIR is not set"):
        call_command("metrics_exporter", "--port", "9")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics))
    with pytest.raises(CommandError, match=re.escape("METRICS_EXPORTER_HOST='0.0.0.0' is not a loopback address")):
        call_command("metrics_exporter", "--host", "0.0.0.0", "--port", "9108")
    with socket.socket() as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=re.escape(f"cannot listen on 127.0.0.1:{port}: Address already in use")):
            call_command("metrics_exporter", "--port", str(port))


def test_a_missing_metrics_directory_is_created_and_importing_writes_no_samples(tmp_path: Path) -> None:
    """prometheus-client fails on the first metric when the directory is missing: beat and the workers must start
    anyway; and a process that only loads the app (a CLI command, the exporter) leaves no sample files."""
    metrics = tmp_path / "not-yet" / "metrics"
    env = os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    code = "import alarm_backends.service.scheduler.app, patches.redbeat.schedulers; print('loaded')"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "loaded", result.stderr
    assert metrics.is_dir() and list(metrics.iterdir()) == []
