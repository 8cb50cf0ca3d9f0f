"""The platform's own cron jobs: each keeps the scheduler observable or its Redis DBs tidy.

Listed in ``config/role/worker.py`` and run by the crontab loader, one task each:

* ``heartbeat`` (``main``, ``cluster_heartbeat``) — liveness records of the scheduler and of each cluster, in the
  service DB;
* ``queue_depth`` — the broker depth of every crontab queue, into the cache DB;
* ``cron_report`` — per-task run/failure/cost totals folded from the run log into the cache DB, incrementally;
* ``result_cleanup`` — gives Celery result keys without a TTL in the queue DB the app's ``result_expires``;
* ``log_trim`` — trims the run log in the log DB to ``CRON_RUN_LOG_RETENTION``;
* ``cluster_cache.cache_cluster_info`` — this cluster's name, code and routing rules, into the cache DB;
* ``redis_metrics.collect_redis_metric`` — memory, clients and key counts of every DB role, into the cache DB.

Every job returns a small summary of what it did; the cron tasks ignore results, so it is for callers and logs.
"""
