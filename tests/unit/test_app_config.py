"""The backend app's Celery configuration: the original's table, JSON by default, cluster-scoped queues."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from alarm_backends.service.scheduler.config import backend_config
from config.tools.celery import worker_concurrency


@pytest.mark.parametrize(("cpu", "expected"), [(1, 1), (2, 2), (4, 4), (8, 6), (16, 9), (32, 14), (48, 18), (64, 22)])
def test_concurrency_formula(cpu: int, expected: int) -> None:
    assert worker_concurrency(cpu) == expected


def test_celery_workers_setting_wins() -> None:
    assert worker_concurrency(64, 3) == 3


def conf(**overrides: Any) -> SimpleNamespace:
    base: dict[str, Any] = {
        "CELERY_WORKERS": 0,
        "CELERY_SERIALIZER": "json",
        "CELERY_BROKER_BACKEND": "rabbitmq",
        "RABBITMQ_HOST": "mq",
        "RABBITMQ_PORT": 5672,
        "RABBITMQ_VHOST": "bkmonitorv3",
        "RABBITMQ_USER": "u",
        "RABBITMQ_PASS": "p@ss",
        "REDIS_MODE": "standalone",
        "REDIS_HOST": "r",
        "REDIS_PORT": 6379,
        "REDIS_PASSWORD": "pw/1",
        "REDIS_SENTINEL_HOSTS": [],
        "REDIS_SENTINEL_MASTER_NAME": "mymaster",
        "REDIS_SENTINEL_PASSWORD": "",
        "REDIS_DB_PLAN": {"log": 7, "cache": 8, "queue": 9, "service": 10},
        "REDBEAT_REDIS_DB": 0,
        "REDBEAT_KEY_PREFIX": "redbeat:",
        "CLUSTER_SCOPED_NAMES": False,
        "REDBEAT_LOCK_TIMEOUT": 300,
        "REDBEAT_STANDBY_INTERVAL": 1.0,
        "REDBEAT_MISSED_RUN": {"policy": "once"},
        "REDBEAT_FIRST_RUN": "now",
        "REDBEAT_REDIS_CLUSTER_NODES": [],
        "REDBEAT_REDIS_CLUSTER_PASSWORD": "",
        "REDBEAT_COMMIT_REPLICAS": 0,
        "CONSUL_ENABLED": False,
        "IS_CONTAINER_MODE": False,
    }
    return SimpleNamespace(**(base | overrides))


def test_the_original_settings_table() -> None:
    config = backend_config(conf(), cpu_count=8)
    assert config["worker_max_tasks_per_child"] == 1000
    assert config["worker_concurrency"] == 6
    assert config["task_acks_late"] is True
    assert (config["task_default_exchange"], config["task_default_queue"], config["task_default_routing_key"]) == (
        "monitor",
        "monitor",
        "monitor",
    )
    monitor, llm = config["task_queues"]
    assert (monitor.name, monitor.exchange.name, monitor.routing_key) == ("monitor", "monitor", "monitor")
    # The original binds the LLM queue to the default exchange `monitor` (its service/scheduler/app.py).
    assert (llm.name, llm.exchange.name, llm.routing_key) == ("celery_llm_task", "monitor", "celery_llm_task")
    assert llm.queue_arguments == {"x-message-ttl": 600000, "x-max-length": 1000}
    assert config["broker_url"] == "amqp://u:p%40ss@mq:5672/bkmonitorv3"
    assert config["beat_max_loop_interval"] == 60
    assert config["redbeat_lock_timeout"] == 300
    assert config["result_backend"] == "redis://:pw%2F1@r:6379/9"
    # The redbeat URL's password is quoted too (the original left it raw), db 0 as in the original.
    assert config["redbeat_redis_url"] == "redis://:pw%2F1@r:6379/0"
    assert config["timezone"] == "UTC"


def test_json_by_default_pickle_only_when_asked() -> None:
    config = backend_config(conf(), cpu_count=2)
    assert (config["task_serializer"], config["result_serializer"], config["accept_content"]) == (
        "json",
        "json",
        ["json"],
    )
    # The upgrade setting: pickle written (the original's workers accept nothing else), both accepted.
    config = backend_config(conf(CELERY_SERIALIZER="pickle"), cpu_count=2)
    assert (config["task_serializer"], config["accept_content"]) == ("pickle", ["json", "pickle"])
    with pytest.raises(ValueError, match="CELERY_SERIALIZER='yaml'"):
        backend_config(conf(CELERY_SERIALIZER="yaml"), cpu_count=2)


def test_redis_broker_uses_the_queue_db() -> None:
    config = backend_config(conf(CELERY_BROKER_BACKEND="redis"), cpu_count=2)
    assert config["broker_url"] == "redis://:pw%2F1@r:6379/9"
    with pytest.raises(ValueError, match="CELERY_BROKER_BACKEND='kafka'"):
        backend_config(conf(CELERY_BROKER_BACKEND="kafka"), cpu_count=2)


def test_sentinel_result_backend_and_redbeat_options() -> None:
    config = backend_config(
        conf(
            REDIS_MODE="sentinel",
            REDIS_SENTINEL_HOSTS=[["s1", 26379], ["s2", 26380]],
            REDIS_SENTINEL_PASSWORD="spw",
        ),
        cpu_count=2,
    )
    assert config["result_backend"] == "sentinel://:pw%2F1@s1:26379/9;sentinel://:pw%2F1@s2:26380/9"
    assert config["result_backend_transport_options"] == {
        "master_name": "mymaster",
        "sentinel_kwargs": {"password": "spw"},
    }
    options = config["redbeat_redis_options"]
    assert sorted(options["sentinels"]) == [("s1", 26379), ("s2", 26380)]
    assert (options["service_name"], options["socket_timeout"], options["retry_period"]) == ("mymaster", 10, 60)
    assert options["sentinel_kwargs"] == {"password": "spw"}


def test_queue_names_are_scoped_by_cluster() -> None:
    config = backend_config(conf(), cpu_count=2, queue_name=lambda q: f"blue-{q}")
    assert [q.name for q in config["task_queues"]] == ["blue-monitor", "blue-celery_llm_task"]
    assert config["task_default_queue"] == "blue-monitor"


@pytest.mark.parametrize(
    ("consul", "container", "gate"),
    [(False, False, ""), (True, False, "alarm_backends.management.base.leader:LeaderGate"), (True, True, "")],
)
def test_beat_is_gated_by_the_ring_leader_only_with_consul_outside_containers(
    consul: bool, container: bool, gate: str
) -> None:
    config = backend_config(conf(CONSUL_ENABLED=consul, IS_CONTAINER_MODE=container), cpu_count=2)
    assert config["redbeat_leader_gate"] == gate


def test_a_new_entry_waits_for_its_first_slot_by_default() -> None:
    """REDBEAT_FIRST_RUN is "next" in the platform's settings and in the scheduler's own default, as stock redbeat
    behaves (an emptied store made every entry fire at once with "now")."""
    from django.conf import settings

    from patches.redbeat.config import SchedulerConfig

    assert settings.REDBEAT_FIRST_RUN == "next"
    assert (
        backend_config(conf(REDBEAT_FIRST_RUN=settings.REDBEAT_FIRST_RUN), cpu_count=1)["redbeat_first_run"] == "next"
    )
    assert SchedulerConfig.from_app({}).first_run_now is False
    assert SchedulerConfig.from_app({"redbeat_first_run": "now"}).first_run_now is True


def test_a_cluster_store_gets_a_hash_tagged_prefix_and_stocks_cluster_options() -> None:
    nodes = ["10.0.0.1:7000", "10.0.0.2:7001", "[::1]:7002"]
    config = backend_config(
        conf(REDBEAT_REDIS_CLUSTER_NODES=nodes, REDBEAT_REDIS_CLUSTER_PASSWORD="p@ss/1", REDBEAT_COMMIT_REPLICAS=1),
        cpu_count=1,
    )
    assert config["redbeat_key_prefix"] == "{redbeat}:"
    assert config["redbeat_commit_replicas"] == 1
    assert config["redbeat_redis_url"] == "redis-cluster://10.0.0.1:7000/0"
    options = config["redbeat_redis_options"]
    assert options == {
        "startup_nodes": [
            {"host": "10.0.0.1", "port": 7000},
            {"host": "10.0.0.2", "port": 7001},
            {"host": "::1", "port": 7002},
        ],
        "password": "p@ss/1",
    }
    # The client built from them, on a real cluster: tests/integration/test_redbeat_cluster.py.


@pytest.mark.parametrize(
    ("prefix", "cluster", "scoped", "expected"),
    [
        ("redbeat:", "default", True, "{redbeat}:"),
        ("redbeat:", "blue", True, "{redbeat:blue}:"),
        ("redbeat:", "blue", False, "{redbeat}:"),
        ("{bkm}:redbeat:", "default", True, "{bkm}:redbeat:"),
    ],
)
def test_a_cluster_prefix_puts_every_key_of_one_schedule_in_one_slot(
    prefix: str, cluster: str, scoped: bool, expected: str
) -> None:
    from redis.crc import key_slot

    from alarm_backends.service.scheduler.config import cluster_prefix, redbeat_key_prefix

    tagged = cluster_prefix(redbeat_key_prefix(prefix, cluster, scoped))
    assert tagged == expected
    # redis-py's own slot function: the schedule's keys share one slot.
    keys = [tagged + suffix for suffix in ("a", "some.job", ":schedule", ":lock", ":statics", ":leader", ":run-now")]
    assert len({key_slot(key.encode()) for key in keys}) == 1
