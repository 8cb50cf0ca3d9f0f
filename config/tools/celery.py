"""Celery settings shared by the backend and SaaS apps, computed from Django settings (pure: no I/O).

``conf`` is anything with the setting names as attributes (``django.conf.settings`` in the apps, a
``SimpleNamespace`` in tests).
"""

from __future__ import annotations

from typing import Any

from config.tools.rabbitmq import RabbitMQSettings
from config.tools.redis import RedisSettings, from_settings, redis_url, sentinel_result_backend

SERIALIZERS = ("json", "pickle")


def worker_concurrency(cpu_count: int, celery_workers: int = 0) -> int:
    """``CELERY_WORKERS`` when > 0, else ``int(cpu ** 0.6 * 1.85)`` (1→1, 2→2, 4→4, 8→6, 16→9, 32→14, 64→22)."""
    if celery_workers > 0:
        return celery_workers
    return max(int(cpu_count**0.6 * 1.85), 1)


def main_redis(conf: Any) -> RedisSettings:
    """The main Redis (log, queue, service DBs and the scheduler store) from ``REDIS_*`` settings."""
    return from_settings(conf, "REDIS_")


def cache_redis(conf: Any) -> RedisSettings:
    """The cache Redis from ``CACHE_REDIS_*`` settings."""
    return from_settings(conf, "CACHE_REDIS_")


def serializer_settings(conf: Any) -> dict[str, Any]:
    """JSON, written and accepted; or, for a rolling upgrade from the original (``CELERY_SERIALIZER = "pickle"``),
    pickle written, so the original's workers (which accept pickle only) run this beat's messages, and both accepted,
    so these workers run the original's pickle messages and any JSON ones. Pickle lets whoever can publish to the
    broker run code in every worker: switch back to JSON once no host runs the original."""
    name = conf.CELERY_SERIALIZER
    if name not in SERIALIZERS:
        raise ValueError(f"CELERY_SERIALIZER={name!r} must be one of {', '.join(SERIALIZERS)}")
    accept = ["json", "pickle"] if name == "pickle" else ["json"]
    return {"task_serializer": name, "result_serializer": name, "accept_content": accept}


def broker_settings(conf: Any) -> dict[str, Any]:
    """RabbitMQ, or the queue DB of the main Redis (the embedded default) when ``CELERY_BROKER_BACKEND`` is redis."""
    backend = conf.CELERY_BROKER_BACKEND
    if backend == "rabbitmq":
        rabbit = RabbitMQSettings(
            host=conf.RABBITMQ_HOST,
            port=int(conf.RABBITMQ_PORT),
            vhost=conf.RABBITMQ_VHOST,
            username=conf.RABBITMQ_USER,
            password=conf.RABBITMQ_PASS,
        )
        return {"broker_url": rabbit.broker_url()}
    if backend != "redis":
        raise ValueError(f"CELERY_BROKER_BACKEND={backend!r} must be rabbitmq or redis")
    redis = main_redis(conf)
    db = conf.REDIS_DB_PLAN["queue"]
    if redis.is_sentinel:
        urls, options = sentinel_result_backend(redis, db)
        return {"broker_url": urls, "broker_transport_options": options}
    # Wait for the broker's unacked restore longer than the longest cron job (an hour), so a slow task
    # is not handed to a second worker while the first is still on it (acks_late).
    return {"broker_url": redis_url(redis, db), "broker_transport_options": {"visibility_timeout": 3 * 3600}}


def result_backend_settings(conf: Any) -> dict[str, Any]:
    """Results in the queue DB (9) of the main Redis; the sentinel form is ``;``-joined ``sentinel://`` URLs."""
    redis = main_redis(conf)
    db = conf.REDIS_DB_PLAN["queue"]
    if redis.is_sentinel:
        urls, options = sentinel_result_backend(redis, db)
        return {"result_backend": urls, "result_backend_transport_options": options}
    return {"result_backend": redis_url(redis, db)}
