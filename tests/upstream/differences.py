"""The upstream tests the patched scheduler fails on purpose, each with the reason (README: *Against celery-redbeat's
own tests*). ``tests/integration/test_redbeat_upstream.py`` holds the upstream run to this table exactly: a test not
listed must pass, a listed one must fail, and the README must name each.

Ids are pytest node ids relative to the sdist's root (``tests/<file>::<class>::<test>``).
"""

from __future__ import annotations

# celery-redbeat 2.4.2's suite, upstream's own @unittest.skip tests included.
UPSTREAM_TESTS = 85

# Upstream tests (a file, a class or one test, by node id prefix) that exercise stock code the project uses
# unchanged, and no code of patches/redbeat; every other test that runs must reach it.
STOCK_ONLY = {
    "tests/test_config.py": "stock's RedBeatConfig, the settings of stock's entry API",
    "tests/test_schedules.py": "stock's rrule schedule, which the store keeps as it is",
    "tests/test_utils.py": "the timestamp helpers of stock's redbeat.decoder",
    "tests/test_entry.py::test_RedBeatEntry::test_due_at": "stock's entry arithmetic, no store involved",
    "tests/test_entry.py::test_RedBeatEntry::test_due_at_never_run": "stock's entry arithmetic, no store involved",
    "tests/test_entry.py::test_RedBeatEntry::test_due_at_overdue": "stock's entry arithmetic, no store involved",
    "tests/test_entry.py::test_RedBeatEntry::test_generate_key": "stock's entry key, no store involved",
    "tests/test_entry.py::test_RedBeatEntry::test_key": "stock's entry key, no store involved",
}


def stock_only(nodeid: str) -> bool:
    return any(nodeid == prefix or nodeid.startswith(prefix + "::") for prefix in STOCK_ONLY)


LEASE = (
    "the lock's lease (redbeat_lock_timeout) is 30 s by default, not 5 x beat_max_loop_interval (1500 s); "
    "redbeat_lock_timeout = 1500 restores it"
)
RENEWAL_SLEEP = (
    "the leader sleeps at most until its lease is due for renewal (a third of it: 10 s), not beat_max_loop_interval, "
    "and it always holds the lock (lock_key = None does not turn it off); redbeat_lock_timeout = 1500 restores the "
    "300 s sleep"
)
SCHEDULE_ATTR = (
    "scheduler.schedule is the entries this beat was given, not a read of the due ones from Redis; "
    "manage.py beat_schedule list reads the store"
)
BATCH_PUBLISH = (
    "due entries are published in batches through one producer, not one Scheduler.send_task per entry "
    "(stock fails this test on Celery 5.7 too: beat adds a celery_beat_task header)"
)
LEADER_WRITES = (
    "the schedule is written to Redis by the leader's first tick, fenced by the lock, not by "
    "setup_schedule/update_from_dict in every beat, standbys included"
)
LOCK_IN_TICKS = (
    "the lock is taken by the scheduler's ticks, never in beat_init (install() disconnects "
    "acquire_distributed_beat_lock): no scheduler.lock, and a beat without the lock stands by instead of failing"
)
NO_BROKER_FALLBACK = (
    "the store's client is built from redbeat_redis_url/redbeat_redis_options only, never from broker_url or "
    "broker_transport_options/broker_use_ssl (stock deprecates that fallback and drops it in 2.5.0)"
)
LOWERCASE = (
    "settings are read under their lowercase names only (redbeat_redis_url, ...), as the app sets them; "
    "Celery 3's upper-case REDBEAT_* names are not read"
)
RETRY = (
    "a lost connection is retried by redis-py's own Retry, within retry_period, not by a tenacity "
    "RetryingConnection wrapper (the test also relies on the broker_url fallback)"
)
CLUSTER = (
    "Redis Cluster is configured through the lowercase redbeat_* settings (cluster, startup_nodes, redis-cluster://), "
    "never read from the broker's; and the store's key prefix needs a hash tag ({redbeat}:), so every script can "
    "declare its keys in one slot"
)

_SCHEDULER = "tests/test_scheduler.py"

DIFFERENCES: dict[str, str] = {
    f"{_SCHEDULER}::test_RedBeatScheduler_schedule::test_schedule_includes_current_and_next": SCHEDULE_ATTR,
    f"{_SCHEDULER}::test_RedBeatScheduler_tick::test_empty": RENEWAL_SLEEP,
    f"{_SCHEDULER}::test_RedBeatScheduler_tick::test_due_later_task_never_run": RENEWAL_SLEEP,
    f"{_SCHEDULER}::test_RedBeatScheduler_tick::test_due_now": BATCH_PUBLISH,
    f"{_SCHEDULER}::test_RedBeatScheduler_tick::test_old_static_entries_are_removed": LEADER_WRITES,
    f"{_SCHEDULER}::TestRedBeatSchedulerUpdateFromDict::test_update_from_dict": LEADER_WRITES,
    f"{_SCHEDULER}::TestRedBeatSchedulerUpdateFromDict::test_update_from_dict_fetch_redis_entry": LEADER_WRITES,
    f"{_SCHEDULER}::test_RedBeatScheduler_tick::test_lock_timeout": LEASE,
    f"{_SCHEDULER}::RedBeatLockTimeoutDefaultValues::test_no_values": LEASE,
    f"{_SCHEDULER}::RedBeatLockTimeoutCustomMaxInterval::test_no_lock_timeout": LEASE,
    f"{_SCHEDULER}::test_RedBeatScheduler_tick::test_lock_acquisition_failed_during_startup": LOCK_IN_TICKS,
    f"{_SCHEDULER}::RedBeatStartupAcquiresLock::test_acquires_lock": LOCK_IN_TICKS,
    f"{_SCHEDULER}::RedBeatStartupAcquiresLock::test_connection_error": LOCK_IN_TICKS,
    f"{_SCHEDULER}::NotSentinelRedBeatCase::test_sentinel_scheduler": NO_BROKER_FALLBACK,
    f"{_SCHEDULER}::InheritedBrokerOptionsRedBeatCase::test_inherited_options_not_forwarded_to_redis": (
        NO_BROKER_FALLBACK
    ),
    f"{_SCHEDULER}::ExplicitOptionsRedBeatCase::test_explicit_options_pass_through_except_internal": (
        NO_BROKER_FALLBACK
    ),
    f"{_SCHEDULER}::SentinelRedBeatCase::test_sentinel_scheduler": NO_BROKER_FALLBACK,
    f"{_SCHEDULER}::SentinelRedBeatCase::test_sentinel_scheduler_options": NO_BROKER_FALLBACK,
    f"{_SCHEDULER}::SentinelRedBeatCase::test_sentinel_scheduler_with_retry_period": NO_BROKER_FALLBACK,
    f"{_SCHEDULER}::SentinelRedBeatCase::test_sentinel_scheduler_with_username": NO_BROKER_FALLBACK,
    f"{_SCHEDULER}::SSLConnectionToRedisDefaultBrokerSSL::test_ssl_connection_scheduler": NO_BROKER_FALLBACK,
    f"{_SCHEDULER}::SeparateOptionsForSchedulerCase::test_sentinel_scheduler": LOWERCASE,
    f"{_SCHEDULER}::SSLConnectionToRedis::test_ssl_connection_scheduler": LOWERCASE,
    f"{_SCHEDULER}::SSLConnectionToRedisNoCerts::test_ssl_connection_scheduler": LOWERCASE,
    f"{_SCHEDULER}::RedisWithCredentialProvider::test_redis_with_credential_provider_scheduler": LOWERCASE,
    f"{_SCHEDULER}::SentinelWithCredentialProvider::test_sentinel_with_credential_provider": LOWERCASE,
    f"{_SCHEDULER}::RetryPeriodRedBeatCase::test_retry_period_not_forwarded_to_redis": RETRY,
    f"{_SCHEDULER}::ClusterRedBeatCase::test_sentinel_scheduler": CLUSTER,
    f"{_SCHEDULER}::ClusterUrlRedBeatCase::test_cluster_scheduler_from_url": CLUSTER,
    f"{_SCHEDULER}::InheritedClusterOptionsRedBeatCase::test_startup_nodes_preserved_options_forwarded": CLUSTER,
    f"{_SCHEDULER}::InheritedClusterOptionsRedBeatCase::test_no_skip_log_when_options_are_forwarded": CLUSTER,
}
