"""``manage.py celery …`` drives Celery's CLI for the SaaS app: worker, inspect ping, beat."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.integration.conftest import wait_for
from tests.processes import stop_group

REPO = Path(__file__).resolve().parents[2]
MANAGE = [sys.executable, "manage.py", "celery"]


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            MANAGE + args,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )


def test_call_command_forwards_and_reports_failures(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("celery", "report")
    assert "software -> celery:5.7.0" in capsys.readouterr().out
    with pytest.raises(CommandError, match="No such command 'nosuchcommand'"):
        call_command("celery", "nosuchcommand")


@pytest.mark.redis
def test_worker_answers_inspect_ping(redis_dbs: None, tmp_path: Path) -> None:
    node = f"saas-test-{os.getpid()}@{socket.gethostname()}"
    worker = start(
        ["worker", "-l", "INFO", "-n", node, "-c", "1", "--without-gossip", "--without-mingle"], tmp_path / "w.log"
    )
    try:
        wait_for(lambda: "ready." in (tmp_path / "w.log").read_text(), 60, "the SaaS worker")
        assert "app:         proj:" in (tmp_path / "w.log").read_text()
        ping = subprocess.run(
            [*MANAGE, "inspect", "ping", "-d", node, "-t", "10"], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert ping.returncode == 0, ping.stderr
        assert f"{node}: OK" in ping.stdout and "pong" in ping.stdout
    finally:
        stop_group(worker)
    # Nothing answers now: Celery's own failure status comes back out of manage.py.
    ping = subprocess.run(
        [*MANAGE, "inspect", "ping", "-d", node, "-t", "1"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert ping.returncode == 1
    assert "No nodes replied" in ping.stderr


@pytest.mark.redis
def test_beat_starts(redis_dbs: None, tmp_path: Path) -> None:
    # The SaaS beat keeps its schedule in the database (django-celery-beat): it needs the tables.
    call_command("migrate", "--noinput", verbosity=0)
    beat = start(["beat", "-l", "INFO"], tmp_path / "beat.log")
    try:
        wait_for(lambda: "DatabaseScheduler: Schedule changed" in (tmp_path / "beat.log").read_text(), 60,
                 "the SaaS beat to load its schedule")  # fmt: skip
        assert beat.poll() is None
    finally:
        stop_group(beat)
