"""``manage.py healthz`` against the real test Redis (DBs 11-15), a private password-protected redis-server, and the
Consul agent of the suite (the in-repo fake unless a real one is configured)."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from celery import Celery
from celery.schedules import crontab
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from alarm_backends.management.base.service_discovery import ConsulRegistration
from alarm_backends.management.commands import healthz as healthz_command
from patches.redbeat.schedulers import RedBeatScheduler
from tests.conftest import REDIS_HOST, TEST_DB_PLAN, TEST_REDBEAT_DB
from tests.fakeconsul.fixture import ConsulAgent, private_ring
from tests.gate import redis_server
from tests.integration.beatproc import Beat
from tests.integration.conftest import wait_for
from tests.integration.redbeat_helpers import make_app
from tests.net import free_port

pytestmark = pytest.mark.redis
REPO = Path(__file__).resolve().parents[2]

CHECKS = [
    "redis log",
    "redis cache",
    "redis queue",
    "redis service",
    "crontab",
    "scheduler store",
    "broker",
    "consul",
    "beat lock",
    "leader",
    "queue depth",
]
ENTRIES = {"minutely": {"task": "t.minutely", "schedule": crontab(minute="*")}}
PASSWORD = "hunter2/s3cr@t"  # reserved characters: quoted in URLs, so both forms must stay out of the output


def healthz(*args: str) -> tuple[str, str, int]:
    """stdout, stderr and the exit status of the command."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("healthz", "--timeout", "2", *args, stdout=out, stderr=err)
        code = 0
    except CommandError as exc:
        err.write(str(exc))
        code = exc.returncode
    return out.getvalue(), err.getvalue(), code


def statuses(out: str) -> dict[str, str]:
    return {item["name"]: item["status"] for item in json.loads(out)}


@pytest.fixture
def use_app(redis_dbs: None, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Celery]:
    """Makes the command check a test app (store on DB 15, broker on DB 13, or as given)."""

    def install(**conf: Any) -> Celery:
        store_url = conf.pop("redbeat_redis_url", None)
        app = make_app(ENTRIES, **conf)
        if store_url:  # make_app sets its own
            app.conf.redbeat_redis_url = store_url
        monkeypatch.setattr(healthz_command, "backend_app", lambda: app)
        return app

    return install


@pytest.fixture
def beats() -> Iterator[Callable[[Celery], RedBeatScheduler]]:
    made: list[RedBeatScheduler] = []

    def make(app: Celery) -> RedBeatScheduler:
        made.append(RedBeatScheduler(app=app))
        return made[-1]

    yield make
    for beat in made:
        beat.close()


def test_all_ok_with_a_beat_holding_the_lock(use_app: Callable[..., Celery], beats: Callable[..., Any]) -> None:
    beats(use_app()).tick()  # syncs the schedule and takes the lock
    out, err, code = healthz()
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["CHECK", "STATUS", "TIME", "DETAIL"]
    rows = {name: line for line in lines[1:-2] for name in CHECKS if line.startswith(name + " ")}
    assert list(rows) == CHECKS
    assert all(line[len(name) :].split()[0] == "OK" for name, line in rows.items()), out
    assert f"redis log db {TEST_DB_PLAN['log']} at 127.0.0.1:6379: PONG" in rows["redis log"]
    assert f"redis://127.0.0.1:6379/{TEST_REDBEAT_DB}: PONG, 1 entries" in rows["scheduler store"]
    assert f"held by {socket.gethostname()} pid " in rows["beat lock"] and "left of 3s" in rows["beat lock"]
    assert " for 0s, term 1 (" in rows["beat lock"] or " for 1s, term 1 (" in rows["beat lock"]
    assert "yes: no Consul configured" in rows["leader"]
    assert "crontab queues" in rows["queue depth"]
    assert "8 entries in 5 lists, every job imports" in rows["crontab"]
    assert lines[-1] == "OK: 11 ok, 0 warn, 0 fail"


def test_json_shape_and_warnings_do_not_fail(use_app: Callable[..., Celery]) -> None:
    app = use_app()
    # A backed-up crontab queue (kombu's Redis transport: a list named after the queue).
    from alarm_backends.jobs.queue_depth import queue_names

    deep = queue_names()[0]
    with app.connection_for_write() as connection:
        queue = connection.SimpleQueue(deep)
        for n in range(3):
            queue.put({"n": n})
        queue.close()
    out, _, code = healthz("--json", "--queue-threshold", "2")
    assert code == 0  # no beat and a deep queue are warnings
    loaded = json.loads(out)
    assert [item["name"] for item in loaded] == CHECKS
    assert all(set(item) == {"name", "status", "detail", "seconds", "data"} for item in loaded)
    assert all(isinstance(item["seconds"], float) and item["seconds"] < 2 for item in loaded)
    by_name = {item["name"]: item for item in loaded}
    assert by_name["beat lock"]["status"] == "warn" and by_name["beat lock"]["data"] == {"held": False}
    assert by_name["queue depth"]["status"] == "warn"
    assert by_name["queue depth"]["data"]["depths"][deep] == 3
    assert f"above 2: {deep}=3" in by_name["queue depth"]["detail"]
    assert {item["status"] for name, item in by_name.items() if name not in ("beat lock", "queue depth")} == {"ok"}


def test_a_closed_broker_port_fails_its_lines_and_the_rest_is_reported(use_app: Callable[..., Celery]) -> None:
    port = free_port()
    use_app(broker_url=f"redis://{REDIS_HOST}:{port}/13")
    out, err, code = healthz("--json")
    assert code == 1 and "unhealthy: broker, queue depth" in err
    found = statuses(out)
    assert list(found) == CHECKS
    assert found["broker"] == found["queue depth"] == "fail"
    assert {found[name] for name in CHECKS if name not in ("broker", "queue depth", "beat lock")} == {"ok"}
    broker = next(item for item in json.loads(out) if item["name"] == "broker")
    assert f"127.0.0.1:{port}" in broker["detail"] and "Connection refused" in broker["detail"]


def test_a_closed_redis_port_fails_that_db_only(use_app: Callable[..., Celery]) -> None:
    use_app()
    with override_settings(CACHE_REDIS_PORT=free_port()):
        out, err, code = healthz()
    assert code == 1 and err.strip().endswith("unhealthy: redis cache")
    cache = next(line for line in out.splitlines() if line.startswith("redis cache "))
    assert cache.split()[2] == "FAIL" and "Connection refused" in cache
    assert out.splitlines()[-1] == "FAIL: 9 ok, 1 warn, 1 fail"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[int]:
    """A redis-server of this test's own, on a free loopback port, requiring PASSWORD."""
    port = free_port()
    cmd = [redis_server(), "--bind", REDIS_HOST, "--port", str(port), "--save", "", "--appendonly", "no",
           "--dir", str(tmp_path), "--requirepass", PASSWORD]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    probe = redis.Redis(host=REDIS_HOST, port=port, password=PASSWORD, socket_connect_timeout=0.5)
    try:
        wait_for(probe.ping, 10, f"redis-server on {port}", ignore=(redis.ConnectionError,))
        yield port
    finally:
        probe.close()
        proc.terminate()
        proc.wait(10)


def test_the_password_never_appears(use_app: Callable[..., Celery], private_redis: int) -> None:
    port = private_redis
    url = f"redis://:{quote(PASSWORD, safe='')}@{REDIS_HOST}:{port}"
    use_app(broker_url=f"{url}/13", redbeat_redis_url=f"{url}/15")
    main = {"REDIS_PORT": port, "REDIS_PASSWORD": PASSWORD}
    with override_settings(**main, CACHE_REDIS_PORT=port, CACHE_REDIS_PASSWORD=PASSWORD):
        report, _, code = healthz()
        as_json, _, _ = healthz("--json")
    assert code == 0, report
    assert {item["status"] for item in json.loads(as_json)} == {"ok", "warn"}  # warn: no beat holds the lock
    for text in (report, as_json):
        assert PASSWORD not in text and quote(PASSWORD, safe="") not in text
        assert f"redis://:***@{REDIS_HOST}:{port}/15: PONG" in text
    # A wrong password fails the lines that use it, still without printing either password.
    with override_settings(**{**main, "REDIS_PASSWORD": "not-" + PASSWORD}):
        report, err, code = healthz()
    assert code == 1 and "redis log" in err and "redis cache" not in err
    assert PASSWORD not in report and quote(PASSWORD, safe="") not in report


@pytest.fixture
def ring(consul_agent: ConsulAgent) -> Iterator[str]:
    """Consul enabled on a private APP_CODE; yields it, and deletes its keys afterwards."""
    with private_ring(consul_agent) as overrides:
        yield str(overrides["APP_CODE"])


def test_consul_registration_and_leader(use_app: Callable[..., Celery], ring: str) -> None:
    use_app()
    out, _, _ = healthz("--json")
    before = {item["name"]: item for item in json.loads(out)}
    assert before["consul"]["status"] == "warn" and "is not registered under" in before["consul"]["detail"]
    assert before["leader"]["status"] == "warn" and "there is no leader" in before["leader"]["detail"]
    registration = ConsulRegistration("celerybeat")  # this host, as a beat registers it
    assert registration.register([2])
    try:
        out, _, _ = healthz("--json")
    finally:
        registration.unregister()
    after = {item["name"]: item for item in json.loads(out)}
    assert after["consul"]["status"] == "ok" and "registered under" in after["consul"]["detail"]
    assert after["leader"]["status"] == "ok" and after["leader"]["detail"].startswith("yes: ")


def test_an_unreachable_consul_fails_its_lines(use_app: Callable[..., Celery]) -> None:
    use_app()
    with override_settings(CONSUL_ENABLED=True, CONSUL_CLIENT_HOST=REDIS_HOST, CONSUL_CLIENT_PORT=free_port()):
        out, err, code = healthz("--json")
    assert code == 1 and "unhealthy: consul, leader" in err
    found = {item["name"]: item for item in json.loads(out)}
    assert "is unavailable" in found["consul"]["detail"] and found["leader"]["detail"].startswith("unknown: ")


def test_a_bad_crontab_entry_is_a_failed_row_and_the_rest_is_reported() -> None:
    """Django's system checks refused to run healthz over one malformed entry (which beat only skips); now the
    entry is a failed row of its own, with the rest of the report (a subprocess: call_command skips the checks)."""
    bad = ["alarm_backends.jobs.heartbeat.cluster_heartbeat", "* * *", "cluster"]
    env = os.environ | {
        "BKAPP_SETTINGS_ACTION_TASK_CRONTAB": json.dumps([bad, ["no.such.job", "* * * * *", "cluster"]])
    }
    result = subprocess.run([sys.executable, "manage.py", "healthz", "--json"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().endswith(
        "CommandError: unhealthy: crontab ACTION_TASK_CRONTAB[0], crontab ACTION_TASK_CRONTAB[1]"
    )
    found = {item["name"]: item for item in json.loads(result.stdout)}
    malformed, unimportable = found["crontab ACTION_TASK_CRONTAB[0]"], found["crontab ACTION_TASK_CRONTAB[1]"]
    assert malformed["status"] == unimportable["status"] == "fail"
    assert malformed["detail"].startswith(f"ACTION_TASK_CRONTAB[0] = {bad!r}: bad cron '* * *'")
    assert malformed["detail"].endswith("(skipped: it never runs)")
    assert "cron job 'no.such.job' cannot be imported" in unimportable["detail"]
    assert unimportable["detail"].endswith("(every run fails)")
    assert {"redis log", "scheduler store", "broker", "beat lock", "queue depth"} <= set(found)


def test_a_killed_beat_of_this_host_fails_the_lock_line_at_once(use_app: Callable[..., Celery], tmp_path: Path) -> None:
    """After kill -9 of this host's beat the lock stays held by the dead pid until its lease runs out (24 s were
    seen green): the token names host and pid, so the line fails at once, naming the pid."""
    use_app()
    beat = Beat("dead", "bkm-test-healthz-q", tmp_path, lock_timeout=60, BEAT_TEST_ENTRIES="1",
                BKAPP_SETTINGS_REDBEAT_REDIS_DB=str(TEST_REDBEAT_DB))  # fmt: skip
    try:
        wait_for(lambda: beat.logged("acquired the lock"), 60, "the beat to lead")
        out, _, code = healthz("--json")
        assert code == 0 and statuses(out)["beat lock"] == "ok", out
        beat.signal(signal.SIGKILL)
        beat.proc.wait(10)
        out, err, code = healthz("--json")
    finally:
        beat.stop()
    lock = next(item for item in json.loads(out) if item["name"] == "beat lock")
    assert code == 1 and "beat lock" in err
    assert lock["status"] == "fail" and lock["data"]["alive"] is False
    assert f"held by {socket.gethostname()} pid {beat.proc.pid}" in lock["detail"]
    assert (
        f"but pid {beat.proc.pid} is not running on this host: nothing is dispatched until its lease runs out in"
        in (lock["detail"])
    )


def test_the_originals_daemon_command_line_checks_and_logs(
    use_app: Callable[..., Celery], caplog: pytest.LogCaptureFixture
) -> None:
    """`healthz -d -i 600` (the original's healthz_daemon program) here with an interval of a day: one cycle, then
    it exits as the original did after a day. Single node: this host leads, so it checks; the broker (a closed
    port) is the one problem, named on an ERROR line."""
    use_app(broker_url="redis://127.0.0.1:1/13")
    with caplog.at_level(logging.INFO, logger="self_monitor"):
        out, err, code = healthz("-d", "-i", "86400", "-t")
    assert code == 0 and out.strip() == "healthz: 1 check(s) made, bye!", (out, err)
    problems = [r for r in caplog.records if "problem(s):" in r.message]
    assert len(problems) == 1 and problems[0].levelname == "ERROR"
    assert problems[0].message.startswith("healthz: 2 problem(s): broker: ") and "queue depth: " in problems[0].message
