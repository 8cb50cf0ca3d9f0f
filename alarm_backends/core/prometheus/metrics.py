"""Prometheus metrics of the platform, under the original's names.

Prefork workers run jobs in child processes: set ``PROMETHEUS_MULTIPROC_DIR`` (before start) and each process
writes its samples to files there, which ``prometheus_client.multiprocess.MultiProcessCollector`` aggregates.
"""

from prometheus_client import Counter, Gauge, Histogram

# The original's buckets, so its dashboards' quantiles and `le` selectors keep working.
CRON_BUCKETS = (1, 5, 10, 30, 60, 120, 180, 240, 300, 450, 600, 900, 1800, 3000, 10000, float("inf"))
CELERY_BUCKETS = (0.1, 0.5, 1, 3, 5, 10, 30, 60, 300, 1800, float("inf"))

CRON_TASK_EXECUTE_TIME = Histogram(
    "bkmonitor_cron_task_execute_time",
    "Duration of a cron job run, seconds",
    ["task_name", "queue"],
    buckets=CRON_BUCKETS,
)
CRON_TASK_EXECUTE_COUNT = Counter(
    "bkmonitor_cron_task_execute_count",
    "Cron job runs by outcome",
    ["task_name", "status", "exception", "queue"],
)
WORKER_REFUSED_MESSAGES = Counter(
    "bkmonitor_worker_refused_messages",
    "Task messages a worker refused for their content type (discarded: the run is lost)",
    ["content_type", "queue"],
)
CELERY_TASK_EXECUTE_TIME = Histogram(
    "bkmonitor_celery_task_execute_time",
    "Duration of any Celery task of the backend app, seconds",
    ["task_name", "queue", "exception"],
    buckets=CELERY_BUCKETS,
)

# For the alert on a job that stopped running (support-files/prometheus): when each job last ran, and when it is due
# next after that run (by its own crontab). "max" across the processes that ran it, recycled children included.
CRON_TASK_LAST_RUN = Gauge(
    "bkmonitor_cron_task_last_run_timestamp_seconds",
    "When a cron job's last run ended, epoch seconds",
    ["task_name", "queue"],
    multiprocess_mode="max",
)
CRON_TASK_NEXT_DUE = Gauge(
    "bkmonitor_cron_task_next_due_timestamp_seconds",
    "When a cron job is due next after its last run, by its crontab, epoch seconds",
    ["task_name", "queue"],
    multiprocess_mode="max",
)
# Written by the queue_depth job once a minute, from whichever worker ran it: the most recent count wins.
CRON_QUEUE_DEPTH = Gauge(
    "bkmonitor_cron_queue_depth",
    "Messages waiting in a crontab queue on the broker",
    ["queue"],
    multiprocess_mode="mostrecent",
)
