"""The backend app's Celery configuration, computed from Django settings (pure: no I/O).

Faithful to the original's ``rabbitmq_conf()`` except where a comment says why not.
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

from config.tools.celery import (
    broker_settings,
    main_redis,
    result_backend_settings,
    serializer_settings,
    worker_concurrency,
)
from config.tools.consul import uses_ring
from config.tools.redis import redis_url, shuffled_sentinels
from patches.redbeat.store import hash_tag

DEFAULT_QUEUE = "monitor"
LLM_QUEUE = "celery_llm_task"
# LLM jobs are only worth running while someone waits for them, and must not pile up.
LLM_QUEUE_ARGUMENTS = {"x-message-ttl": 600_000, "x-max-length": 1000}
LEADER_GATE = "alarm_backends.management.base.leader:LeaderGate"


def task_queues(queue_name: Any = str) -> tuple[Queue, ...]:
    """The declared queues; every other queue is created on first use. ``queue_name`` scopes a name by cluster."""
    monitor, llm = queue_name(DEFAULT_QUEUE), queue_name(LLM_QUEUE)
    return (
        Queue(monitor, Exchange(monitor), routing_key=monitor),
        # Bound to the default exchange, as the original binds it: messages its hosts publish for LLM tasks go to
        # `monitor` with this routing key.
        Queue(llm, Exchange(monitor), routing_key=llm, queue_arguments=LLM_QUEUE_ARGUMENTS),
    )


def redbeat_key_prefix(prefix: str, cluster: str, scoped: bool = True) -> str:
    """``redbeat:`` in the default cluster; with ``scoped`` (``CLUSTER_SCOPED_NAMES``) ``redbeat:<cluster>:`` in the
    others, so clusters sharing one Redis neither contend for one lock nor prune each other's entries. Unscoped, the
    original's one prefix: a cluster's beats then fence the original's beats of that cluster in a rolling upgrade."""
    return f"{prefix}{cluster}:" if scoped and cluster != "default" else prefix


def cluster_prefix(prefix: str) -> str:
    """``prefix`` with a hash tag, so every key of the schedule is in one slot of a Redis Cluster: ``redbeat:``
    becomes ``{redbeat}:``, ``redbeat:blue:`` becomes ``{redbeat:blue}:``; a prefix with a tag of its own is kept."""
    return prefix if hash_tag(prefix) is not None else "{" + prefix.rstrip(":") + "}:"


def cluster_store(nodes: list[str], password: str) -> dict[str, Any]:
    """The store on a Redis Cluster, as stock celery-redbeat configures one: ``redis-cluster://`` with the
    ``startup_nodes`` (the password in the options, where it needs no URL quoting)."""
    startup = [{"host": host.strip("[]"), "port": int(port)} for host, _, port in (n.rpartition(":") for n in nodes)]
    options: dict[str, Any] = {"startup_nodes": startup}
    if password:
        options["password"] = password
    return {"redbeat_redis_url": f"redis-cluster://{nodes[0]}/0", "redbeat_redis_options": options}


def redbeat_settings(conf: Any, cluster: str = "default") -> dict[str, Any]:
    prefix = redbeat_key_prefix(conf.REDBEAT_KEY_PREFIX, cluster, bool(conf.CLUSTER_SCOPED_NAMES))
    settings: dict[str, Any] = {
        "redbeat_key_prefix": prefix,
        "redbeat_lock_timeout": conf.REDBEAT_LOCK_TIMEOUT,
        "redbeat_standby_interval": conf.REDBEAT_STANDBY_INTERVAL,
        "redbeat_missed_run": conf.REDBEAT_MISSED_RUN,
        "redbeat_first_run": conf.REDBEAT_FIRST_RUN,
        "redbeat_commit_replicas": conf.REDBEAT_COMMIT_REPLICAS,
        # With Consul, the ring's leader host is the one that should take the lock (README: Leadership); in a
        # container or without Consul the platform runs one beat per deployment and the Redis lock alone decides.
        "redbeat_leader_gate": LEADER_GATE if uses_ring(conf) else "",
    }
    if conf.REDBEAT_REDIS_CLUSTER_NODES:
        settings.update(cluster_store(list(conf.REDBEAT_REDIS_CLUSTER_NODES), conf.REDBEAT_REDIS_CLUSTER_PASSWORD))
        settings["redbeat_key_prefix"] = cluster_prefix(prefix)
    else:
        settings.update(main_store(conf))
    return settings


def main_store(conf: Any) -> dict[str, Any]:
    """The store on the main Redis (REDBEAT_REDIS_DB), standalone or through its Sentinels: where it is without
    REDBEAT_REDIS_CLUSTER_NODES, and where ``beat_store_migrate`` copies from by default."""
    redis = main_redis(conf)
    if not redis.is_sentinel:
        return {"redbeat_redis_url": redis_url(redis, conf.REDBEAT_REDIS_DB)}
    options: dict[str, Any] = {
        "sentinels": shuffled_sentinels(redis),
        "password": redis.password,
        "service_name": redis.master_name,
        "socket_timeout": 10,
        "retry_period": 60,
    }
    if redis.sentinel_password:
        options["sentinel_kwargs"] = {"password": redis.sentinel_password}
    return {
        "redbeat_redis_url": f"redis-sentinel://redis-sentinel:26379/{conf.REDBEAT_REDIS_DB}",
        "redbeat_redis_options": options,
    }


def backend_config(conf: Any, cpu_count: int, queue_name: Any = str, cluster: str = "default") -> dict[str, Any]:
    queues = task_queues(queue_name)
    config: dict[str, Any] = {
        "worker_max_tasks_per_child": 1000,
        "worker_concurrency": worker_concurrency(cpu_count, int(conf.CELERY_WORKERS)),
        "task_acks_late": True,
        # With acks_late alone Celery acknowledges the message of a run whose pool process was killed (the OOM
        # killer, a segfault) and the run is never delivered again; rejecting it requeues it, and the worker-side
        # dedupe lets exactly that unfinished run be taken over. A job that always kills its own process is
        # redelivered until its message expires.
        "task_reject_on_worker_lost": True,
        "task_default_exchange": queues[0].exchange.name,
        "task_default_queue": queues[0].name,
        "task_default_routing_key": queues[0].routing_key,
        "task_queues": queues,
        "task_create_missing_queues": True,
        "beat_max_loop_interval": 60,
        "beat_scheduler": "redbeat.RedBeatScheduler",
        "broker_connection_retry_on_startup": True,
        # The platform's logging comes from Django's LOGGING (setup_logging handler in app.py).
        "worker_hijack_root_logger": False,
        # Crontabs are evaluated in UTC, as the original (which never set a timezone) did.
        "timezone": "UTC",
        "enable_utc": True,
    }
    config.update(serializer_settings(conf))
    config.update(broker_settings(conf))
    config.update(result_backend_settings(conf))
    config.update(redbeat_settings(conf, cluster))
    return config
