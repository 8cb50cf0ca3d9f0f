"""Settings shared by every role and environment (loaded first)."""

import os
from pathlib import Path

from config.tools.consul import get_consul_settings
from config.tools.database import database_settings
from config.tools.env import first, first_int
from config.tools.environment import (
    APP_CODE,
    BKAPP_DEPLOY_PLATFORM,
    DJANGO_CONF_MODULE,
    ENVIRONMENT,
    IS_CONTAINER_MODE,
    NEW_ENV,
    PLATFORM,
    ROLE,
)
from config.tools.secret import DEVELOPMENT_KEY

BASE_DIR = Path(__file__).resolve().parent.parent
# Everything a running platform writes on a host (sockets, pid files, logs, the SQLite DB) lives here.
RUN_DIR = os.environ.get("BKM_RUN_DIR") or str(BASE_DIR / "run")
LOG_PATH = os.environ.get("BK_LOG_DIR") or os.path.join(RUN_DIR, "logs")
LOG_FILE_PREFIX = ""
LOG_LEVEL = os.environ.get("BKAPP_LOG_LEVEL") or "INFO"
# "console" and/or "file" (LOG_PATH/<LOG_FILE_PREFIX>kernel.log); the role decides by deploy mode.
LOG_HANDLERS = ["console"]
# "json": JSON lines on the console, for a container runtime's collector (the default in container mode); "text".
LOG_FORMAT = os.environ.get("BKAPP_LOG_FORMAT") or ("json" if IS_CONTAINER_MODE else "text")

# Unset: a public default, which the console replaces by a random key of the host's own (config.tools.secret).
SECRET_KEY = first(os.environ, "BKAPP_SECRET_KEY", "SECRET_KEY", default=DEVELOPMENT_KEY)
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "alarm_backends.apps.AlarmBackendsConfig",
    "alarm_backends.console.apps.ConsoleConfig",
    "django_celery_beat",
]
# The operators' console (alarm_backends.console): Django's sign-in, sessions and CSRF protection.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "config.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:schedule"
LOGOUT_REDIRECT_URL = "console:login"
# SQLite in the run dir, or PostgreSQL with BKAPP_DB_ENGINE=postgresql (config.tools.database).
DATABASES = {"default": database_settings(os.environ, RUN_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "Asia/Shanghai"

# The business whose owner on the hash ring is the leader host.
DEFAULT_BK_BIZ_ID = first_int(os.environ, "BKAPP_DEFAULT_BK_BIZ_ID", default=2)

# Celery worker processes per worker program; 0 means int(cpu ** 0.6 * 1.85).
CELERY_WORKERS = 0
# `manage.py metrics_exporter` (a supervisord program) serves the host's metrics on this loopback address;
# port 0 leaves the program out.
METRICS_EXPORTER_HOST = "127.0.0.1"
METRICS_EXPORTER_PORT = 9108
# The operators' console (alarm_backends.console), served by gunicorn under supervisord; port 0 leaves it out.
CONSOLE_HOST = "127.0.0.1"
CONSOLE_PORT = 10207
# The original's self-monitoring daemon (its `healthz_daemon` program: `manage.py healthz -d -i 600`) runs under
# supervisord with this interval in seconds; 0 leaves the program out.
HEALTHZ_DAEMON_INTERVAL = 600
# The original ran every program through `bash -c "source bin/environ.sh && exec …"`, its deployment's variables in
# that file: the path of such a file makes the rendered programs source it the same way. Empty: not used.
SUPERVISOR_ENVIRON_SH = ""
# The original's aggregation gateway (its `prom_agg_gateway` program, a separate binary): its path renders the
# program in the `service` group, listening for UDP pushes and HTTP scrapes on PROM_AGG_GATEWAY_PORT (the
# original's BK_MONITOR_PROM_PORT). Empty: no such program.
PROM_AGG_GATEWAY_BINARY = ""
PROM_AGG_GATEWAY_PORT = first_int(os.environ, "BK_MONITOR_PROM_PORT", default=10206)
# The original's aggregation gateway: set, each cron run's metrics are also pushed there over UDP (to the UDP URL,
# host[:port], port 10206 by default), beside the exporter.
METRIC_AGG_GATEWAY_URL = os.environ.get("BKAPP_METRIC_AGG_GATEWAY_URL", "")
METRIC_AGG_GATEWAY_UDP_URL = os.environ.get("BKAPP_METRIC_AGG_GATEWAY_UDP_URL", "") or METRIC_AGG_GATEWAY_URL
# "json" (default) or "pickle". The original used pickle, which lets anyone who can publish to the broker run
# arbitrary code in every worker; periodic jobs take no arguments, so JSON loses nothing.
CELERY_SERIALIZER = "json"
# When True a cron job's exception fails the Celery task (visible in events and worker logs) after it has been
# logged and counted; False keeps the original's behaviour of swallowing it.
CRON_TASK_RAISE_ERRORS = True
# Outside the default cluster, False (default) keeps the original's names, which a rolling upgrade needs: queues
# `celery_cron` & co. and the scheduler store `redbeat:` are shared with the original's hosts. (The original asked for
# a `<cluster>-` queue prefix through broker_transport_options.queue_name_prefix, which kombu's RabbitMQ and Redis
# transports ignore.) True scopes them by cluster, `<cluster>-celery_cron` and `redbeat:<cluster>:`, so clusters on
# one vhost or one Redis stop consuming each other's queues and sharing one lock: switch it on once no host runs the
# original.
CLUSTER_SCOPED_NAMES = False
# Packages whose sub-packages' `tasks` modules the backend app registers at start (the original's list; roots not
# installed on a host are skipped), besides INSTALLED_APPS.
TASK_ROOT_MODULES = [
    "alarm_backends.service",
    "alarm_backends.service.alert",
    "alarm_backends.service.converge",
    "alarm_backends.core",
    "api",
    "apm",
    "apm_ebpf",
    "rum",
    "metadata",
    "bkmonitor",
]
# A function (dotted path) returning the business ids of the enabled strategies, for `hash_ring --type
# run_access-data` and the other access rings, whose targets in the original are those ids plus
# BKMONITOR_WORKER_INCLUDE_LIST. Empty: those rings show the platform's targets (the include list and
# DEFAULT_BK_BIZ_ID).
HASH_RING_TARGETS_SOURCE = ""
# The original's settings edited at run time: CELERY_WORKERS, EXCLUDE_WORKER_TASKS and
# ALARM_BACKEND_CLUSTER_ROUTING_RULES are read from the database's `global_setting` table when a row names them
# (kept 180 s), as the original's hack_settings does (alarm_backends/core/dynamic_settings.py). False: these
# settings modules only.
USE_DYNAMIC_SETTINGS = True
# The hash ring's points. True separates labels two hosts would share (10.0.0.1 + "10" and 10.0.0.11 + "0"), which
# the original gave to one host only; False places the original's, so hosts of the original and of this platform
# agree on every owner. "auto" (default): separated once every host registered on a ring announces that it runs this
# platform's ring (each host of this platform does, unless set to False; the original's hosts do not).
HASH_RING_SEPARATE_LABELS: bool | str = "auto"
# Which clock decides whether a scheduled cron run is past its expires: "redis" (the beat sends the deadline on the
# Redis server's clock and the worker's claim checks it there) or "worker" (Celery's `expires` header, which each
# worker compares with its own clock: the original's; a worker host minutes off dropped or ran late runs).
CRON_EXPIRES_CLOCK = "redis"
# The zone a crontab entry's cron is evaluated in when the entry names none (its options' "timezone", an IANA name):
# "" evaluates it in the backend app's zone (UTC), as the original did. A named zone follows its daylight-saving
# changes: a wall time skipped fires at the gap's end, one repeated fires once (patches/redbeat/zoned.py).
CRON_DEFAULT_TIMEZONE = ""
# Seconds each slot of an entry without its own "jitter" may be published after it (a fixed offset per entry and
# slot, the same from every beat; the slot id does not change), capped at half the entry's shortest gap: spreads a
# burst of entries on one cron over that window. 0, the original's: every slot is published at once.
CRON_DEFAULT_JITTER = 0
# What a scheduled run does when the entry's previous run is still running, for entries without their own "overlap":
# "allow" (the original's: they overlap), "skip" (not run, counted and logged), "buffer_one" (run as soon as the
# running one ends, at most one waiting) or "replace" (the running one terminated). See
# alarm_backends/service/scheduler/overlap.
CRON_DEFAULT_OVERLAP = "allow"
# Seconds a running job's hold on its entry (under an overlap policy other than "allow") lasts unless renewed; it is
# renewed every third of this while the job runs, so a worker killed mid-run frees the entry within this long.
CRON_RUN_LEASE = 60
# The Redis broker's transport (CELERY_BROKER_BACKEND = "redis"): "reliable" (patches/kombu_redis: a message moves
# atomically from its queue into its consumer's record, and what a dead consumer held is back in its queue within
# seconds) or "kombu" (kombu's own, the original's: a consumer dying as it takes a message loses it, and what a
# killed worker held comes back after the visibility timeout, 3 hours).
BROKER_REDIS_TRANSPORT = "reliable"

# Cluster (alarm_backends.core.cluster): name, code and the ordered routing rules.
ALARM_BACKEND_CLUSTER_NAME = os.environ.get("BK_MONITOR_ALARM_BACKEND_CLUSTER_NAME") or "default"
ALARM_BACKEND_CLUSTER_CODE = os.environ.get("BK_MONITOR_ALARM_BACKEND_CLUSTER_CODE") or "0"
ALARM_BACKEND_CLUSTER_ROUTING_RULES = [{"target_type": "biz", "cluster_name": "default", "matcher_type": "true"}]

# Optional product integrations that add crontab entries when configured.
BCS_API_GATEWAY_HOST = first(os.environ, "BKAPP_BCS_API_GATEWAY_HOST", "BK_BCS_API_GATEWAY_HOST")
MAIL_REPORT_BIZ = first_int(os.environ, "MAIL_REPORT_BIZ", default=0)
API_CACHE_BASE_INTERVAL = first_int(os.environ, "API_CACHE_BASE_INTERVAL", default=10)

# Consul (registration, hash ring, leader check). Not configured means single-node.
_consul = get_consul_settings(os.environ)
CONSUL_ENABLED = _consul.enabled
CONSUL_CLIENT_HOST = _consul.host
CONSUL_CLIENT_PORT = _consul.port
CONSUL_HTTPS_PORT = _consul.https_port or 0
CONSUL_CLIENT_CA_FILE = _consul.ca_file
CONSUL_CLIENT_CERT_FILE = _consul.cert_file
CONSUL_CLIENT_KEY_FILE = _consul.key_file
CONSUL_ACL_TOKEN = _consul.token
del _consul
# Seconds a registration's session lives without renewal (renewed within half of it); Consul allows 10-86400.
CONSUL_SESSION_TTL = 60
# Seconds to wait for the agent before a call counts as failed (beat asks it from inside its tick).
CONSUL_TIMEOUT = 3.0
# This host's address on the ring; empty means the default-route interface's IPv4 address.
HOST_ADDR = os.environ.get("BK_MONITOR_HOST_ADDR", "")
