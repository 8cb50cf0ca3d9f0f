"""The worker role: the crontab lists, the Redis DB plan, the broker, supervisor and logging.

Crontab entries are ``(dotted path, cron, run_type)``:

* the path names a module (run through its ``main()``) or a function (called directly), resolved when the task
  runs, so a broken job fails only its own task;
* the cron string has five fields in **Celery's** positional order — minute, hour, day_of_week, day_of_month,
  month_of_year — not standard cron's (minute, hour, day_of_month, month, day_of_week); times are UTC;
* run_type ``global`` entries run only in the default cluster, ``cluster`` entries in every cluster.

Add entries here, or replace a whole list with ``BKAPP_SETTINGS_DEFAULT_CRONTAB='[["pkg.job", "*/5 * * * *",
"global"]]'``.
"""

import os

from config.default import RUN_DIR
from config.tools.environment import APP_CODE, IS_CONTAINER_MODE, NEW_ENV
from config.tools.rabbitmq import get_rabbitmq_settings
from config.tools.redis import default_redis_mode, get_cache_redis_settings, get_redis_settings, to_settings

# Queue celery_cron.
DEFAULT_CRONTAB = [
    # scheduler self-monitoring: beat/worker liveness in the service DB
    ("alarm_backends.jobs.heartbeat", "* * * * *", "global"),
    # depth of every crontab queue on the broker, into the cache DB
    ("alarm_backends.jobs.queue_depth", "* * * * *", "global"),
    # per-task run/failure counts from the run log, into the cache DB
    ("alarm_backends.jobs.cron_report", "*/5 * * * *", "global"),
    # result-backend hygiene in the queue DB
    ("alarm_backends.jobs.result_cleanup", "*/10 * * * *", "global"),
]

# Queue celery_action_cron.
ACTION_TASK_CRONTAB = [
    # each cluster's own liveness record
    ("alarm_backends.jobs.heartbeat.cluster_heartbeat", "* * * * *", "cluster"),
]

# Queue celery_long_task_cron.
LONG_TASK_CRONTAB = [
    # trim the run log in the log DB to its retention; a trim still running when the next is due has that one's work
    # to do already, so the next is skipped rather than run beside it
    ("alarm_backends.jobs.log_trim", "0 * * * *", "global", {"overlap": "skip"}),
]

# Queue celery_api_cron (fixed expires 300; the task keeps the job's own name).
API_CRONTAB = [
    ("alarm_backends.jobs.cluster_cache.cache_cluster_info", "*/1 * * * *", "global"),
]

# Queue celery_report_cron (fixed expires 300; the task keeps the job's own name).
REPORT_CRONTAB = [
    ("alarm_backends.jobs.redis_metrics.collect_redis_metric", "* * * * *", "cluster"),
]

# Dotted paths to leave out of every list on this host (read once, at process start).
EXCLUDE_WORKER_TASKS: list[str] = []
# Extra business ids the dispatcher always considers.
BKMONITOR_WORKER_INCLUDE_LIST: list[int] = []
MIN_DATA_ACCESS_CHECKPOINT = 30 * 60

# Redis: one server (or sentinel group) holds the log, queue and service DBs; the cache DB may live elsewhere.
_redis = get_redis_settings(os.environ, default_mode=default_redis_mode(NEW_ENV, os.environ))
_cache = get_cache_redis_settings(os.environ, _redis)
# REDIS_MODE, REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_SENTINEL_HOSTS, REDIS_SENTINEL_MASTER_NAME,
# REDIS_SENTINEL_PASSWORD, and the same names prefixed CACHE_ for the cache Redis.
globals().update(to_settings(_redis, "REDIS_"))
globals().update(to_settings(_cache, "CACHE_REDIS_"))
del _redis, _cache

# The DB plan: 7 log (flushable), 8 cache (on the cache Redis), 9 queue (Celery results; also the broker when
# Redis is the broker), 10 service (locks, heartbeats, dedupe).
REDIS_DB_PLAN = {"log": 7, "cache": 8, "queue": 9, "service": 10}
# The scheduler store. db 0 as in the original, so an existing deployment's schedule carries over.
REDBEAT_REDIS_DB = 0
# Outside the default cluster the prefix becomes "redbeat:<cluster>:".
REDBEAT_KEY_PREFIX = "redbeat:"
# The scheduler store on a Redis Cluster (or several nodes of one): "host:port" of any of its nodes (the client finds
# the rest) and its password. Empty: the store is on the main Redis, in REDBEAT_REDIS_DB. On a cluster the key prefix
# gets a hash tag ("redbeat:" becomes "{redbeat}:"), so every key of the schedule is in one slot; moving a schedule
# there: `manage.py beat_store_migrate` (README: Redis Cluster).
REDBEAT_REDIS_CLUSTER_NODES: list[str] = []
REDBEAT_REDIS_CLUSTER_PASSWORD = ""
# Replicas that must hold each schedule write before the tick goes on (Redis WAIT, at most a third of the lease), so
# a failover of the store's master rolls back no run while they answer (when they stop, writes go on without
# waiting, logged); 0, as the original: the write stands on the master alone.
REDBEAT_COMMIT_REPLICAS = 0
# Seconds. The original held a 300 s lock (failover after 5-6 minutes); the leader renews at a third of the TTL and
# standbys retry every REDBEAT_STANDBY_INTERVAL, so a crashed leader is replaced within TTL + 1 s.
REDBEAT_LOCK_TIMEOUT = 30
REDBEAT_STANDBY_INTERVAL = 1.0
# What a late run does: "once" (the original's: fire once however late), "skip" (later than `grace` seconds: wait
# for the next slot) or "all" (fire every missed slot, at most `max_catchup`). Per entry: a fourth element
# {"missed_run": {...}} in a crontab entry.
REDBEAT_MISSED_RUN = {"policy": "once", "grace": 0, "max_catchup": 10}
# A new entry (one the store has no run of) waits for its "next" slot — what the original did in practice (Celery's
# ScheduleEntry stamps last_run_at when redbeat first saves it), and what a Kubernetes CronJob or a Temporal schedule
# does — or fires "now", on the first tick after it is added. With "now" an emptied store (a Redis restart without
# persistence, a failover to an empty replica) fired every entry at once: a Mondays-only job on a Saturday.
REDBEAT_FIRST_RUN = "next"

# RabbitMQ (used when CELERY_BROKER_BACKEND is "rabbitmq").
_rabbitmq = get_rabbitmq_settings(os.environ, app_code=APP_CODE)
RABBITMQ_HOST = _rabbitmq.host
RABBITMQ_PORT = _rabbitmq.port
RABBITMQ_VHOST = _rabbitmq.vhost
RABBITMQ_USER = _rabbitmq.username
RABBITMQ_PASS = _rabbitmq.password
del _rabbitmq

# Supervisor: a unix socket only, never TCP.
SUPERVISOR_SERVER = (
    "unix:///var/run/bkmonitorv3/monitor-supervisor.sock"
    if NEW_ENV != "dev"
    else "unix://" + os.path.join(RUN_DIR, "supervisor.sock")
)

# Logging: console in containers and development, plus a watched file on hosts.
LOG_HANDLERS = ["console"] if IS_CONTAINER_MODE or NEW_ENV == "dev" else ["console", "file"]
