"""A configured password never shows up in what operators read: CLI output, rendered config, beat's log.

Redis and RabbitMQ are pointed at a loopback port nothing listens on, so every command goes through its error
path, where a URL with credentials is the most likely to be printed whole — and nothing is written anywhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from tests.integration.conftest import wait_for
from tests.net import free_port
from tests.processes import stop_group

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-P@ss/w%rd"


def secret_env(tmp_path: Path) -> dict[str, str]:
    port = str(free_port())  # nothing listens there
    return os.environ | {
        "BK_MONITOR_REDIS_HOST": "127.0.0.1",
        "BK_MONITOR_REDIS_PORT": port,
        "BK_MONITOR_REDIS_PASSWORD": SECRET,
        "BK_MONITOR_RABBITMQ_PASSWORD": SECRET,
        "BKM_RUN_DIR": str(tmp_path / "run"),
        "PYTHONUNBUFFERED": "1",
    }


def assert_no_secret(what: str, text: str) -> None:
    for form in (SECRET, quote(SECRET, safe=""), quote(SECRET)):
        assert form not in text, f"{what} shows the password ({form!r}):\n{text[-2000:]}"


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    return done.stdout + done.stderr


def test_cli_output_and_rendered_config_hide_the_password(tmp_path: Path) -> None:
    env = secret_env(tmp_path)
    for args in (("healthz",), ("healthz", "--json"), ("beat_schedule", "list"), ("hash_ring",), ("check",)):
        assert_no_secret(f"manage.py {' '.join(args)}", manage(env, *args))
    output = tmp_path / "supervisord.conf"
    assert_no_secret("render_supervisor", manage(env, "render_supervisor", "--output", str(output), "--redis", "no"))
    assert_no_secret("the rendered supervisord.conf", output.read_text())


def test_beats_log_hides_the_password(tmp_path: Path) -> None:
    log = tmp_path / "beat.log"
    cmd = [sys.executable, "-m", "celery", "-A", "alarm_backends.service.scheduler.app", "beat", "-l", "debug",
           "-S", "redbeat.RedBeatScheduler", "-s", str(tmp_path / "schedule")]  # fmt: skip
    with log.open("wb") as out:
        beat = subprocess.Popen(cmd, cwd=REPO, env=secret_env(tmp_path), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        wait_for(lambda: "schedule store" in log.read_text(errors="replace"), 60, "beat to report the store")
        time.sleep(2)  # a few more failed ticks
    finally:
        stop_group(beat)
    text = log.read_text(errors="replace")
    assert "redis://:***@" in text  # the store is named, masked
    assert_no_secret("beat's log", text)
