"""A real backend worker, started by the test in its own process group and stopped by PID."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gate import skip_or_fail
from tests.processes import stop_group

REPO = Path(__file__).resolve().parents[2]
# Where RabbitMQ packages put rabbitmqctl, searched after PATH.
RABBITMQCTL_DIRS = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin", "/usr/lib/rabbitmq/bin")

# The jobs of tests/integration/jobs.py as the only DEFAULT_CRONTAB entries of the worker under test.
TEST_CRONTAB = [
    ["tests.integration.jobs.record_effect", "* * * * *", "global"],
    ["tests.integration.jobmodule", "* * * * *", "global"],
    ["tests.integration.jobs.boom", "* * * * *", "global"],
    ["tests.integration.nothere", "* * * * *", "global"],
]


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, ignore: tuple[type[BaseException], ...] = ()
) -> Any:
    """Poll ``predicate`` until it returns something true; errors of the ``ignore`` types count as not yet."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except ignore as error:
            last, value = error, None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last!r})" if last else "")
    )


class Worker:
    def __init__(self, log_path: Path, proc: subprocess.Popen[bytes]) -> None:
        self.log_path = log_path
        self.proc = proc

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_group(self.proc)


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def start(queue: str = "celery_cron", concurrency: int = 1, **env: str) -> Worker:
        metrics_dir = tmp_path / "metrics"
        metrics_dir.mkdir(exist_ok=True)
        log_path = tmp_path / f"worker-{len(workers)}.log"
        full_env = (
            os.environ
            | {
                "BKAPP_SETTINGS_DEFAULT_CRONTAB": json.dumps(TEST_CRONTAB),
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                "PYTHONUNBUFFERED": "1",
            }
            | env
        )
        cmd = [sys.executable, "-m", "celery", "-A", "alarm_backends.service.scheduler.app", "worker"]
        cmd += [
            "-Q",
            queue,
            "-c",
            str(concurrency),
            "-l",
            "info",
            "-n",
            f"test{len(workers)}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd, cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        worker = Worker(log_path, proc)
        workers.append(worker)
        wait_for(lambda: "ready." in worker.log() or proc.poll() is not None, 60, "the worker to be ready")
        assert proc.poll() is None, worker.log()
        return worker

    yield start
    for worker in workers:
        worker.stop()


def rabbitmqctl() -> str:
    """The broker's own rabbitmqctl. It ships with the RabbitMQ server, in an sbin directory a non-root PATH often
    leaves out (Debian: /usr/sbin; Homebrew: /opt/homebrew/sbin)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *RABBITMQCTL_DIRS])
    ctl = shutil.which("rabbitmqctl", path=path)
    if ctl is None:
        skip_or_fail(
            f"rabbitmqctl (installed with the RabbitMQ server) is not on PATH nor in {', '.join(RABBITMQCTL_DIRS)}: "
            "the test makes a vhost of its own with it"
        )
    return ctl


@pytest.fixture
def rabbitmq_vhost(rabbitmq_service: None) -> Iterator[str]:
    """A vhost of the test's own on the machine's RabbitMQ, deleted afterwards.

    AMQP cannot create vhosts, and the management HTTP API is a plugin a stock install leaves disabled: the broker's
    own rabbitmqctl is what every RabbitMQ install has."""
    ctl = rabbitmqctl()
    vhost = f"bkm-test-{uuid.uuid4().hex[:8]}"
    try:
        subprocess.run([ctl, "add_vhost", vhost], check=True, capture_output=True, text=True, timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        # Typically the Erlang cookie: rabbitmqctl reaches the node only as root or as the broker's own user.
        # Its first lines say why (an Erlang crash report follows): those, on one line.
        detail = " ".join(exc.stderr.split())[:400] if isinstance(exc.stderr, str) else ""
        skip_or_fail(
            f"rabbitmqctl cannot manage the local RabbitMQ node (run the tests as root or as a user holding "
            f"its Erlang cookie): {exc} {detail}".strip()
        )
    try:
        subprocess.run(
            [ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield vhost
    finally:
        subprocess.run([ctl, "delete_vhost", vhost], capture_output=True, timeout=60)
