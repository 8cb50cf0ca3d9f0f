"""A configured password never shows up in what operators read: CLI output, rendered configs, beat's log.

Redis and RabbitMQ are pointed at a loopback port nothing listens on, so every command goes through its error
path, where a URL with credentials is the most likely to be printed whole — and nothing is written anywhere.
A password may also sit inside a JSON override (``BKAPP_SETTINGS_DATABASES``, a nested dict of another setting),
where no variable name says so: the rendered supervisord configs leave such variables out too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from tests.integration.conftest import wait_for
from tests.net import free_port
from tests.processes import stop_group

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-P@ss/w%rd"
DB_SECRET = "db-P@ss/w%rd-7"  # only inside BKAPP_SETTINGS_DATABASES
NESTED_SECRET = "app-S3cr/t@x%y"  # only deep inside another JSON override


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


def assert_no_secret(what: str, text: str, secrets: tuple[str, ...] = (SECRET,)) -> None:
    for secret in secrets:
        # Raw, URL-quoted both ways, and as a supervisord config writes it ("%" doubled).
        for form in {secret, quote(secret, safe=""), quote(secret), secret.replace("%", "%%")}:
            assert form not in text, f"{what} shows a password ({form!r}):\n{text[-2000:]}"


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    return done.stdout + done.stderr


def test_cli_output_and_rendered_config_hide_the_password(tmp_path: Path) -> None:
    env = secret_env(tmp_path)
    for args in (("healthz",), ("healthz", "--json"), ("beat_schedule", "list"), ("hash_ring",), ("check",)):
        assert_no_secret(f"manage.py {' '.join(args)}", manage(env | json_overrides(), *args),
                         (SECRET, DB_SECRET, NESTED_SECRET))  # fmt: skip
    output = tmp_path / "supervisord.conf"
    assert_no_secret("render_supervisor", manage(env, "render_supervisor", "--output", str(output), "--redis", "no"))
    assert_no_secret("the rendered supervisord.conf", output.read_text())


def json_overrides() -> dict[str, str]:
    """Passwords where no variable name says so: inside the databases override and deep inside another one."""
    database = {"ENGINE": "django.db.backends.postgresql", "NAME": "bkmonitor", "USER": "bkmonitor",
                "PASSWORD": DB_SECRET, "HOST": "127.0.0.1", "PORT": 5432}  # fmt: skip
    clients = {"cmdb": {"endpoints": [{"url": "https://cmdb.example/api", "auth": {"app_secret": NESTED_SECRET}}]}}
    return {
        "BKAPP_SETTINGS_DATABASES": json.dumps({"default": database}),
        "BKAPP_SETTINGS_THIRD_PARTY_CLIENTS": json.dumps(clients),
    }


def test_passwords_inside_json_overrides_stay_out_of_rendered_configs(tmp_path: Path) -> None:
    env = secret_env(tmp_path) | json_overrides()
    backend, saas = tmp_path / "supervisord.conf", tmp_path / "saas-supervisord.conf"
    outputs = {
        "render_supervisor": manage(env, "render_supervisor", "--output", str(backend), "--redis", "no"),
        "render_supervisor --check": manage(env, "render_supervisor", "--check", "--redis", "no"),
        "render_saas_supervisor": manage(env, "render_saas_supervisor", "--output", str(saas)),
        "render_saas_supervisor --check": manage(env, "render_saas_supervisor", "--output", str(saas), "--check"),
    }
    files = {
        "the rendered supervisord.conf": backend.read_text(),
        "the rendered saas-supervisord.conf": saas.read_text(),
    }
    for what, text in {**outputs, **files}.items():
        assert_no_secret(what, text, (SECRET, DB_SECRET, NESTED_SECRET))
    assert "supervisord accepts it" in outputs["render_supervisor --check"]
    assert "supervisord accepts it" in outputs["render_saas_supervisor --check"]
    for text in (*files.values(), outputs["render_supervisor --check"]):
        assert "BKAPP_SETTINGS_REDIS_DB_PLAN=" in text  # the variables without a secret are still passed on
        assert "BKAPP_SETTINGS_DATABASES=" not in text and "BKAPP_SETTINGS_THIRD_PARTY_CLIENTS=" not in text
    for output in outputs.values():  # and the operator is told which variables the programs must inherit
        assert "left out of environment=" in output
        assert "BKAPP_SETTINGS_DATABASES, BKAPP_SETTINGS_THIRD_PARTY_CLIENTS" in output


def test_beats_log_hides_the_password(tmp_path: Path) -> None:
    log = tmp_path / "beat.log"
    cmd = [sys.executable, "-m", "celery", "-A", "alarm_backends.service.scheduler.app", "beat", "-l", "debug",
           "-S", "redbeat.RedBeatScheduler", "-s", str(tmp_path / "schedule")]  # fmt: skip
    with log.open("wb") as out:
        beat = subprocess.Popen(cmd, cwd=REPO, env=secret_env(tmp_path) | json_overrides(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        # Three failed ticks, each naming the store (and whatever else a failing tick logs at debug level).
        wait_for(lambda: log.read_text(errors="replace").count("schedule store") >= 3, 60, "three failed ticks")
    finally:
        stop_group(beat)
    text = log.read_text(errors="replace")
    assert "redis://:***@" in text  # the store is named, masked
    assert_no_secret("beat's log", text, (SECRET, DB_SECRET, NESTED_SECRET))
