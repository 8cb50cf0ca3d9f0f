"""The platform's cron jobs against the real Redis (test DBs 11-14) and, for queue depth, RabbitMQ."""

from __future__ import annotations

import json
import logging
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import cast

import pytest
import redis
from celery.exceptions import DuplicateTaskNameWarning
from django.test import override_settings
from kombu import Connection, Exchange, Producer, Queue
from prometheus_client import REGISTRY

from alarm_backends.core.cluster import get_cluster, reset_cluster
from alarm_backends.core.runlog import record_run, stream_key
from alarm_backends.core.storage.redis import close_all, describe_role, key
from alarm_backends.jobs import (
    cluster_cache,
    cron_report,
    heartbeat,
    log_trim,
    queue_depth,
    redis_metrics,
    result_cleanup,
)
from alarm_backends.service.scheduler.app import app, register
from tests.conftest import RABBITMQ_HOST, RABBITMQ_PORT, REDIS_HOST, REDIS_PORT, TEST_DB_PLAN

# Every test runs as a cluster of its own: the job records, the run log stream and the queue names are then
# apart from those of a platform that may be running on the same test DBs (the end-to-end tests start one).
CLUSTER = "jobtest"
pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("own_cluster")]

DAY = 24 * 3600


def db(role: str) -> redis.Redis:
    """A direct client on the test DB of ``role``, independent of the platform's clients."""
    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=TEST_DB_PLAN[role], decode_responses=True)


def record_of(role: str, name: str) -> dict[str, str]:
    """The hash ``name`` in the test DB of ``role`` (decoded: str fields and values)."""
    return cast(dict[str, str], db(role).hgetall(name))


def run_log() -> list[tuple[str, dict[str, str]]]:
    """Every entry of the cron run log, oldest first."""
    return cast(list[tuple[str, dict[str, str]]], db("log").xrange(stream_key()))


@pytest.fixture
def own_cluster() -> Iterator[None]:
    """This process runs as cluster ``CLUSTER`` for the test, its queues scoped by it (``CLUSTER_SCOPED_NAMES``)."""
    with override_settings(ALARM_BACKEND_CLUSTER_NAME=CLUSTER, CLUSTER_SCOPED_NAMES=True):
        reset_cluster()
        try:
            yield
        finally:
            reset_cluster()


@pytest.fixture
def fresh_clients() -> Iterator[None]:
    """Drop the platform's clients around a test that changes where a role's Redis is."""
    close_all()
    yield
    close_all()


# --- heartbeat ------------------------------------------------------------------------------------------------


def test_heartbeat_writes_scheduler_record_with_ttl(redis_dbs: None) -> None:
    before = time.time()
    result = heartbeat.main()

    record = record_of("service", key("scheduler", "heartbeat"))
    assert set(record) == {"host", "pid", "ts", "task"}
    assert record["host"] and int(record["pid"]) > 0
    assert before <= float(record["ts"]) <= time.time()
    assert record["task"] == ""  # called directly, not from a Celery task
    assert 0 < db("service").ttl(key("scheduler", "heartbeat")) <= heartbeat.HEARTBEAT_TTL
    assert result.fields == record
    # The service DB only.
    assert not any(db(role).exists(key("scheduler", "heartbeat")) for role in ("log", "cache", "queue"))


def test_heartbeat_names_the_celery_task_it_runs_in(redis_dbs: None) -> None:
    # The shipped lists' tasks as the default cluster registers them (its `global` heartbeat entry): registering is
    # the app's explicit step, and a name registers once.
    # Names the app registered when its configuration was first read are kept (Celery warns, and this is expected).
    with override_settings(ALARM_BACKEND_CLUSTER_NAME="default", CLUSTER_SCOPED_NAMES=False), warnings.catch_warnings():
        warnings.simplefilter("ignore", DuplicateTaskNameWarning)
        reset_cluster()
        register(app)
    reset_cluster()
    name = next(n for n in app.tasks if n.endswith(".alarm_backends_jobs_heartbeat"))

    outcome = app.tasks[name].apply()

    assert outcome.successful(), outcome.traceback
    assert db("service").hget(key("scheduler", "heartbeat"), "task") == name


def test_cluster_heartbeat_names_the_cluster(redis_dbs: None) -> None:
    heartbeat.cluster_heartbeat()

    record = record_of("service", key("cluster", "heartbeat"))
    assert record["cluster"] == CLUSTER
    assert record["code"] == get_cluster().code == "0000"
    assert {"host", "pid", "ts", "task"} <= set(record)
    assert 0 < db("service").ttl(key("cluster", "heartbeat")) <= heartbeat.HEARTBEAT_TTL


# --- queue depth ----------------------------------------------------------------------------------------------


def test_queue_depth_counts_messages_on_the_redis_broker(redis_dbs: None) -> None:
    assert app.conf.broker_url.startswith("redis://")
    cron_queue = f"{CLUSTER}-celery_cron"
    for _ in range(3):
        app.send_task("tests.never_consumed", queue=cron_queue)
    try:
        result = queue_depth.main()
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(cron_queue)

    names = ("celery_cron", "celery_action_cron", "celery_long_task_cron", "celery_api_cron", "celery_report_cron")
    expected = {f"{CLUSTER}-{name}": 0 for name in names}
    expected[cron_queue] = 3  # the others were never declared: counted as empty, not an error
    assert result.depths == expected
    record = record_of("cache", key("queue", "depth"))
    assert key("queue", "depth") == f"bkmonitorv3.{CLUSTER}.queue.depth"
    assert record == {**{name: str(count) for name, count in expected.items()}, "_ts": record["_ts"]}
    assert abs(float(record["_ts"]) - time.time()) < 60
    # The gauge the dashboard's queue-depth panel and the backlog alert read.
    gauge = {name: REGISTRY.get_sample_value("bkmonitor_cron_queue_depth", {"queue": name}) for name in expected}
    assert gauge == expected


def test_queue_names_are_scoped_by_cluster() -> None:
    assert queue_depth.queue_names() == [
        f"{CLUSTER}-celery_cron",
        f"{CLUSTER}-celery_action_cron",
        f"{CLUSTER}-celery_long_task_cron",
        f"{CLUSTER}-celery_api_cron",
        f"{CLUSTER}-celery_report_cron",
    ]


def test_queue_depth_on_rabbitmq(rabbitmq_service: None) -> None:
    name = f"test-queue-depth-{uuid.uuid4().hex[:8]}"
    url = f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}//"
    with Connection(url, transport_options={"confirm_publish": True}) as connection:
        queue = Queue(name, Exchange(name), routing_key=name, channel=connection.default_channel)
        queue.declare()
        try:
            producer = Producer(connection.default_channel, exchange=queue.exchange, routing_key=name)
            for i in range(2):
                producer.publish({"n": i})
            # The unknown queue's 404 closes its channel only: the next queue is still counted.
            assert queue_depth.depths(connection, [f"{name}-missing", name]) == {f"{name}-missing": 0, name: 2}
        finally:
            queue.delete()


# --- cron report ----------------------------------------------------------------------------------------------


def report(task: str) -> dict[str, str]:
    return record_of("cache", key("cron", "report", task))


def test_cron_report_aggregates_incrementally(redis_dbs: None) -> None:
    record_run("task.a", "celery_cron", "success", 0.5)
    record_run("task.a", "celery_cron", "failed", 1.5, "ValueError")
    record_run("task.b", "celery_action_cron", "success", 0.25)

    first = cron_report.main()

    assert first.entries == 3
    a = report("task.a")
    assert (a["runs"], a["failures"], float(a["cost"]), a["last_status"]) == ("2", "1", 2.0, "failed")
    assert (report("task.b")["runs"], report("task.b")["failures"]) == ("1", "0")
    last_id = run_log()[-1][0]
    assert db("cache").get(key("cron", "report", "cursor")) == last_id == first.cursor

    record_run("task.a", "celery_cron", "success", 1.0)
    second = cron_report.main()

    assert second.entries == 1 and set(second.tasks) == {"task.a"}
    a = report("task.a")
    assert (a["runs"], a["failures"], float(a["cost"]), a["last_status"]) == ("3", "1", 3.0, "success")
    assert report("task.b")["runs"] == "1"  # not counted again

    assert cron_report.main().entries == 0
    assert report("task.a")["runs"] == "3"


def test_cron_report_is_bounded_per_run(redis_dbs: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cron_report, "MAX_ENTRIES", 2)
    for _ in range(5):
        record_run("task.c", "celery_cron", "success", 0.1)

    assert [cron_report.main().entries for _ in range(4)] == [2, 2, 1, 0]
    assert report("task.c")["runs"] == "5"


def test_cron_report_discards_a_batch_another_run_already_took(
    redis_dbs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_run("task.d", "celery_cron", "success", 0.1)
    real_aggregate = cron_report.aggregate

    def concurrent_run_first(entries: cron_report.Entries) -> dict[str, cron_report.TaskTotals]:
        # Another run commits its cursor between this run's read and its write.
        db("cache").set(key("cron", "report", "cursor"), entries[-1][0])
        return real_aggregate(entries)

    monkeypatch.setattr(cron_report, "aggregate", concurrent_run_first)

    result = cron_report.main()

    assert result.entries == 0
    assert report("task.d") == {}


# --- result cleanup -------------------------------------------------------------------------------------------


def test_result_cleanup_expires_only_results_without_ttl(redis_dbs: None) -> None:
    queue = db("queue")
    queue.set("celery-task-meta-no-ttl", "{}")
    queue.set("celery-task-meta-with-ttl", "{}", ex=100)
    queue.set("unrelated", "x")

    result = result_cleanup.main()

    assert (result.scanned, result.fixed, result.completed) == (2, 1, True)
    assert result.expires == DAY == int(app.conf.result_expires.total_seconds())
    assert DAY - 5 < queue.ttl("celery-task-meta-no-ttl") <= DAY
    assert 0 < queue.ttl("celery-task-meta-with-ttl") <= 100
    assert queue.ttl("unrelated") == -1


def test_result_cleanup_resumes_where_the_last_run_stopped(redis_dbs: None, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = db("queue")
    for i in range(100):
        queue.set(f"celery-task-meta-{i}", "{}")
    monkeypatch.setattr(result_cleanup, "SCAN_COUNT", 5)

    runs = [result_cleanup.main(max_keys=5)]
    while not runs[-1].completed and len(runs) < 200:
        runs.append(result_cleanup.main(max_keys=5))

    assert len(runs) > 1 and not runs[0].completed and runs[-1].completed
    assert sum(r.fixed for r in runs) == 100
    assert all(queue.ttl(f"celery-task-meta-{i}") > 0 for i in range(100))


def test_result_expires_accepts_seconds_and_timedelta() -> None:
    from datetime import timedelta

    assert result_cleanup.result_expires(timedelta(hours=2)) == 7200
    assert result_cleanup.result_expires(90) == 90
    assert result_cleanup.result_expires(0) == DAY


# --- log trim -------------------------------------------------------------------------------------------------


def test_log_trim_removes_only_entries_older_than_retention(redis_dbs: None) -> None:
    log = db("log")
    old_ms = int((time.time() - 8 * DAY) * 1000)
    log.xadd(stream_key(), {"task": "old", "status": "success"}, id=f"{old_ms}-0")
    log.xadd(stream_key(), {"task": "old", "status": "success"}, id=f"{old_ms}-1")
    record_run("recent", "celery_cron", "success", 0.1)

    result = log_trim.main()

    assert result.removed == 2
    assert [fields["task"] for _, fields in run_log()] == ["recent"]
    assert log_trim.main().removed == 0


def test_log_trim_follows_the_retention_setting(redis_dbs: None) -> None:
    log = db("log")
    now_ms = int(time.time() * 1000)
    log.xadd(stream_key(), {"task": "two-hours", "status": "success"}, id=f"{now_ms - 2 * 3600_000}-0")
    log.xadd(stream_key(), {"task": "half-hour", "status": "success"}, id=f"{now_ms - 1800_000}-0")

    with override_settings(CRON_RUN_LOG_RETENTION=3600):
        assert log_trim.main().removed == 1

    assert [fields["task"] for _, fields in run_log()] == ["half-hour"]


# --- cluster info ---------------------------------------------------------------------------------------------


def test_cache_cluster_info(redis_dbs: None) -> None:
    rule = {
        "target_type": "biz",
        "cluster_name": CLUSTER,
        "matcher_type": "condition",
        "matcher_config": [{"method": "eq", "value": [2, 3]}],
        "description": "biz 2 and 3",
    }
    with override_settings(ALARM_BACKEND_CLUSTER_ROUTING_RULES=[rule]):
        reset_cluster()
        cluster_cache.cache_cluster_info()

    record = record_of("cache", key("cluster", "info"))
    assert set(record) == {"name", "code", "is_default", "routing_rules", "ts"}
    assert (record["name"], record["code"], record["is_default"]) == (CLUSTER, "0000", "0")
    # The configured rule, then the catch-all the cluster appends, in matching order.
    fallback = {"target_type": "biz", "cluster_name": "default", "matcher_type": "true"}
    assert json.loads(record["routing_rules"]) == [rule, {**fallback, "matcher_config": None, "description": ""}]
    assert abs(float(record["ts"]) - time.time()) < 60


# --- Redis metrics --------------------------------------------------------------------------------------------


def test_collect_redis_metric_counts_each_role_db(redis_dbs: None) -> None:
    record_run("task.m", "celery_cron", "success", 0.1)  # log: the stream
    db("cache").mset({"c1": "1", "c2": "2"})
    db("queue").mset({f"q{i}": "1" for i in range(4)})
    db("service").mset({f"s{i}": "1" for i in range(3)})
    db("service").expire("s0", 100)

    redis_metrics.collect_redis_metric()

    record = record_of("cache", key("redis", "metric"))
    # At least what this test wrote: a platform running on the same test DBs may add its own keys.
    assert all(record[f"{role}.db"] == str(number) for role, number in TEST_DB_PLAN.items())
    keys = {role: int(record[f"{role}.keys"]) for role in TEST_DB_PLAN}
    assert keys["log"] >= 1 and keys["cache"] >= 2 and keys["queue"] >= 4 and keys["service"] >= 3
    assert int(record["service.expires"]) >= 1
    assert all(record[f"{role}.up"] == "1" for role in TEST_DB_PLAN)
    assert all(int(record[f"{role}.used_memory"]) > 0 for role in TEST_DB_PLAN)
    assert int(record["log.connected_clients"]) >= 1


def test_collect_redis_metric_marks_an_unreachable_role_down(
    redis_dbs: None, fresh_clients: None, caplog: pytest.LogCaptureFixture
) -> None:
    db("cache").set("c1", "1")
    # log, queue and service live on the main Redis; the cache role keeps its own server settings.
    with override_settings(REDIS_PORT=1), caplog.at_level(logging.ERROR, logger="cron"):
        close_all()
        collected = redis_metrics.collect_redis_metric()
        unreachable = describe_role("log")

    record = record_of("cache", key("redis", "metric"))
    assert {record[f"{role}.up"] for role in ("log", "queue", "service")} == {"0"}
    assert "log.keys" not in record
    assert record["cache.up"] == "1" and int(record["cache.keys"]) >= 1
    assert collected["log.up"] == 0 and collected["cache.up"] == 1
    assert ":1" in unreachable and unreachable in caplog.text


def test_collect_redis_metric_fails_when_the_cache_db_is_down(
    redis_dbs: None, fresh_clients: None, caplog: pytest.LogCaptureFixture
) -> None:
    with override_settings(CACHE_REDIS_PORT=1), caplog.at_level(logging.ERROR, logger="cron"):
        close_all()
        with pytest.raises(redis.ConnectionError):
            redis_metrics.collect_redis_metric()
        unreachable = describe_role("cache")

    assert unreachable in caplog.text
