"""What celery-redbeat's own suite (tests/integration/test_redbeat_upstream.py) holds the patched scheduler to, in
the parts that need no server: the stock settings and names it keeps."""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import replace
from typing import Any

import pytest
import redbeat.schedulers as stock
import redis
from celery.schedules import crontab, schedule
from redis.sentinel import SentinelManagedSSLConnection

import patches.redbeat
from patches.redbeat.client import CACHE_ATTR, get_redis, reset_redis
from patches.redbeat.entries import Definitions, encode_definition, encode_meta
from patches.redbeat.planner import next_wake
from patches.redbeat.policy import MissedRun, from_epoch
from patches.redbeat.schedulers import RedBeatScheduler
from patches.redbeat.store import Due, DueEntry
from tests.unit.test_redbeat_client import kwargs_of, make_app

CERTS = {"ssl_keyfile": "/etc/tls/beat.key", "ssl_certfile": "/etc/tls/beat.pem", "ssl_ca_certs": "/etc/tls/ca.pem"}
SENTINELS = {"sentinels": [("10.0.0.1", 26379)], "service_name": "bkmonitor"}
CLOSED = "redis://127.0.0.1:1/0"  # never connected to: these tests only build clients


def test_stock_entry_api_gets_the_schedulers_client() -> None:
    """Stock's entries call their module's get_redis: after install() that is the patched builder, caching on
    stock's attribute, so a stock entry and the scheduler share one client (and one place to attach one)."""
    patches.redbeat.install()
    assert stock.get_redis is get_redis
    app = make_app(redbeat_redis_url=CLOSED)
    client = stock.get_redis(app)
    assert get_redis(app) is client and getattr(app, CACHE_ATTR) is client and app.redbeat_redis is client
    attached = redis.Redis(decode_responses=True)
    app.redbeat_redis = attached  # where stock's tools (and its test fixtures) put their client
    assert get_redis(app) is attached
    reset_redis(app)
    attached.close()


def test_use_ssl_dict_reaches_the_client_and_options_override_it() -> None:
    app = make_app(
        redbeat_redis_url="rediss://redis.example:6380/0",
        redbeat_redis_use_ssl=CERTS,
        redbeat_redis_options={"ssl_ca_certs": "/etc/tls/other-ca.pem"},
    )
    kwargs = kwargs_of(get_redis(app))
    assert kwargs["ssl_cert_reqs"] == ssl.CERT_REQUIRED  # verified unless the setting says otherwise
    assert (kwargs["ssl_keyfile"], kwargs["ssl_certfile"]) == (CERTS["ssl_keyfile"], CERTS["ssl_certfile"])
    assert kwargs["ssl_ca_certs"] == "/etc/tls/other-ca.pem"


def test_use_ssl_true_verifies_and_reaches_a_sentinels_master() -> None:
    kwargs = kwargs_of(get_redis(make_app(redbeat_redis_url="rediss://redis.example/0", redbeat_redis_use_ssl=True)))
    assert kwargs["ssl_cert_reqs"] == ssl.CERT_REQUIRED and "ssl_keyfile" not in kwargs
    app = make_app(
        redbeat_redis_url="redis-sentinel://s:26379/3", redbeat_redis_options=SENTINELS, redbeat_redis_use_ssl=CERTS
    )
    pool = get_redis(app).connection_pool
    assert pool.connection_class is SentinelManagedSSLConnection
    assert pool.connection_kwargs["ssl_certfile"] == CERTS["ssl_certfile"]


@pytest.mark.parametrize(
    ("url", "use_ssl", "match"),
    [
        ("redis://redis.example/0", True, "neither rediss://"),  # stock spoke plaintext here
        ("rediss://redis.example/0", "yes", "True or a dict"),
    ],
)
def test_use_ssl_that_cannot_apply_is_refused(url: str, use_ssl: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        get_redis(make_app(redbeat_redis_url=url, redbeat_redis_use_ssl=use_ssl))


def test_startup_nodes_need_a_cluster_url() -> None:
    """They used to reach redis-py and fail the first command with "unexpected keyword argument"."""
    options = {"startup_nodes": [{"host": "h", "port": 30001}]}
    with pytest.raises(ValueError, match=r"'startup_nodes'.* needs a Redis Cluster URL"):
        get_redis(make_app(redbeat_redis_url=CLOSED, redbeat_redis_options=options))


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        ("redis://127.0.0.1:1/3", {"cluster": True}, "a Redis Cluster has DB 0 only"),
        ("redis-cluster://127.0.0.1:1/0", {"startup_nodes": [{"host": "h"}]}, "each needs a host and a port"),
    ],
)
def test_a_cluster_store_that_cannot_be_is_refused_by_name(url: str, options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        get_redis(make_app(redbeat_redis_url=url, redbeat_redis_options=options))


def test_cluster_false_is_accepted_and_not_forwarded() -> None:
    kwargs = kwargs_of(get_redis(make_app(redbeat_redis_url=CLOSED, redbeat_redis_options={"cluster": False})))
    assert "cluster" not in kwargs


@pytest.mark.parametrize(("configured", "lease"), [(None, 30.0), (13, 13.0)])
def test_scheduler_has_stocks_lock_timeout_attribute(configured: float | None, lease: float) -> None:
    app = make_app(redbeat_redis_url=CLOSED, broker_url="memory://", beat_max_loop_interval=7)
    if configured is not None:
        app.conf.redbeat_lock_timeout = configured
    scheduler = RedBeatScheduler(app=app)  # builds its client, but connects only in a tick
    try:
        assert (scheduler.lock_timeout, scheduler.max_interval) == (lease, 7)
    finally:
        reset_redis(app)


T = 1_700_000_040.0  # a whole minute, UTC


@pytest.mark.parametrize("kind", ["interval", "crontab"])
def test_the_leader_sleeps_until_the_slot_a_stock_score_stands_for(kind: str) -> None:
    """Stock's entry API stores a due time floored to the second (a crontab's a second before its minute). The sleep
    ends at the entry's slot, not at that score (waking there, the leader only moved the score on); never past the
    score after it; and at the score itself when the entry cannot be read."""
    now = T + 58.5
    definitions = Definitions(lambda: from_epoch(now), {}, MissedRun())
    if kind == "interval":
        sched: Any = schedule(run_every=dt.timedelta(seconds=90))
        slot = now + 0.9
        meta = encode_meta(from_epoch(slot - 90))  # the last run
    else:
        sched, slot, meta = crontab(minute="*"), T + 60, encode_meta(None)
    score = float(int(slot)) if kind == "interval" else slot - 1
    assert now < score < slot
    head = DueEntry("redbeat:e", score, encode_definition("e", "t.job", sched, (), {}, {}), meta, due=False)
    due = Due(now=now, owned=True, head=score, entries=[], head_entry=head)
    assert next_wake(due, definitions) == pytest.approx(slot)
    assert next_wake(replace(due, after_head=score + 0.25), definitions) == score + 0.25
    assert next_wake(replace(due, head_entry=replace(head, definition="{")), definitions) == score
    assert next_wake(replace(due, head=None, head_entry=None), definitions) is None
