"""The dashboard and the alert rules against a real Prometheus scraping a platform `make run` started: the events
that only a fault produces (a second delivery of a slot, a run past its deadline, a message of the wrong
serializer, a worker restart) are made to happen, and then every metric the dashboard and the rules name has
series, every dashboard query returns series, and every rule evaluates without error."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import wait_for
from tests.prometheus import PrometheusServer, dashboard_queries, metric_names, rule_expressions

# The heartbeat job's task (the crontab's `alarm_backends.jobs.heartbeat`, on celery_cron): harmless to run again.
HEARTBEAT_TASK = "alarm_backends.service.scheduler.tasks.cron.alarm_backends_jobs_heartbeat"
# A query that selects a failed run: the running platform's jobs do not fail, so it alone may come back empty.
FAILURES_ONLY = 'status="failed"'


def make_drops(app: Any, redis_now: float) -> None:
    """A slot delivered twice (the second dropped), a slot past its deadline (dropped), and a pickled message (refused:
    the workers accept JSON), each as the worker sees it from the broker."""
    slot = f"{HEARTBEAT_TASK}@{int(redis_now)}"
    for _ in range(2):
        app.send_task(HEARTBEAT_TASK, queue="celery_cron", task_id=slot, headers={"bkm_deadline": redis_now + 300})
    late = f"{HEARTBEAT_TASK}@{int(redis_now) - 600}"
    app.send_task(HEARTBEAT_TASK, queue="celery_cron", task_id=late, headers={"bkm_deadline": redis_now - 300})
    app.send_task(HEARTBEAT_TASK, queue="celery_cron", serializer="pickle")


# The log trim job (the crontab's `alarm_backends.jobs.log_trim`, on celery_long_task_cron), shipped with "skip".
LOG_TRIM_TASK = "alarm_backends.service.scheduler.tasks.cron.alarm_backends_jobs_log_trim"


def make_overlap(app: Any, redis_now: float) -> None:
    """A slot of the log trim job while its lease says an earlier run of it is still running: skipped and counted.
    The lease is written as a running job holds it (overlap/acquire.lua), for a minute."""
    from alarm_backends.core.storage.redis import SERVICE, get_client
    from alarm_backends.service.scheduler.overlap.lease import lease_key

    held = f"{LOG_TRIM_TASK}@{int(redis_now) - 3600}"
    client = get_client(SERVICE)
    client.hset(lease_key(LOG_TRIM_TASK), mapping={"slot": held, "marker": "running:e2e", "fence": 1, "worker": "e2e:0",
                                                   "since": redis_now})  # fmt: skip
    client.pexpire(lease_key(LOG_TRIM_TASK), 60_000)
    slot = f"{LOG_TRIM_TASK}@{int(redis_now)}"
    app.send_task(LOG_TRIM_TASK, queue="celery_long_task_cron", task_id=slot, headers={"bkm_deadline": redis_now + 300})


def restarted(prometheus: PrometheusServer, program: str) -> bool:
    expr = f'changes(bkmonitor_supervisor_program_start_time_seconds{{program="{program}"}}[10m]) >= 1'
    return bool(prometheus.query(expr))


def check(prometheus: PrometheusServer) -> dict[str, int]:
    """Every metric named has series, every dashboard query (but the failures') returns series, every rule is
    healthy; the number of series each metric has."""
    named = metric_names(rule_expressions()) | metric_names(dashboard_queries())
    counts: dict[str, int] = {}

    def all_present() -> bool:
        for name in named - set(counts):
            found = prometheus.query(f'count({{__name__="{name}"}})')
            if found:
                counts[name] = int(float(found[0]["value"][1]))
        return set(counts) == named

    wait_for(all_present, 120, f"series of every metric the dashboard and the rules name (missing: {named})")
    empty = [title for title, expr in dashboard_queries() if FAILURES_ONLY not in expr and not prometheus.query(expr)]
    assert not empty, f"dashboard panels without series: {empty}"
    rules = list(prometheus.rules())
    assert {rule["name"] for rule in rules} == {name for name, _ in rule_expressions()}
    unhealthy = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"]
    assert not unhealthy, unhealthy
    return counts
