"""Prometheus metrics of the platform, under the original's names.

Prefork workers run jobs in child processes: set ``PROMETHEUS_MULTIPROC_DIR`` (before start) and each process
writes its samples to files there, which ``prometheus_client.multiprocess.MultiProcessCollector`` aggregates.
"""

from prometheus_client import Counter, Histogram

# Cron jobs run from seconds to an hour.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))

CRON_TASK_EXECUTE_TIME = Histogram(
    "bkmonitor_cron_task_execute_time",
    "Duration of a cron job run, seconds",
    ["task_name", "queue"],
    buckets=DURATION_BUCKETS,
)
CRON_TASK_EXECUTE_COUNT = Counter(
    "bkmonitor_cron_task_execute_count",
    "Cron job runs by outcome",
    ["task_name", "status", "exception", "queue"],
)
CELERY_TASK_EXECUTE_TIME = Histogram(
    "bkmonitor_celery_task_execute_time",
    "Duration of any Celery task of the backend app, seconds",
    ["task_name", "queue", "exception"],
    buckets=DURATION_BUCKETS,
)
