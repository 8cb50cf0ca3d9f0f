"""Pushing each cron run's metrics to the original's aggregation gateway (``prom-aggregation-gateway``), beside
the exporter: the original's ``report_all`` after every ``task_duration``.

Off unless ``METRIC_AGG_GATEWAY_URL`` is set, as there. Each run is sent once, over UDP, to
``METRIC_AGG_GATEWAY_UDP_URL`` (``host[:port]``, port 10206 by default): the text exposition of the two cron metrics
holding this run alone — the gateway adds pushes up, which is why the original cleared its registry after each one.
A push that fails is logged and never fails the job.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from alarm_backends.core.prometheus.metrics import CRON_BUCKETS
from config.tools.env import split_host_port

logger = logging.getLogger(__name__)

DEFAULT_UDP_PORT = 10206


def udp_address(url: str) -> tuple[str, int]:
    """``host[:port]`` (a scheme or path, as in the HTTP URL the UDP one defaults to, is ignored) → (host, port)."""
    rest = url.partition("://")[2] or url
    host, port = split_host_port(rest.split("/", 1)[0])
    return host, int(port) if port else DEFAULT_UDP_PORT


def run_payload(task_name: str, queue: str, status: str, exception: str, cost: float) -> bytes:
    """The exposition text of one run: what the original's registry held between two pushes."""
    registry = CollectorRegistry()
    count = Counter("bkmonitor_cron_task_execute_count", "cron job runs", ["task_name", "status", "exception", "queue"],
                    registry=registry)  # fmt: skip
    time = Histogram("bkmonitor_cron_task_execute_time", "cron job run time", ["task_name", "queue"],
                     buckets=CRON_BUCKETS, registry=registry)  # fmt: skip
    count.labels(task_name=task_name, status=status, exception=exception, queue=queue).inc()
    time.labels(task_name=task_name, queue=queue).observe(cost)
    # The original's metric classes sent no `_created` samples: a sum of timestamps would mean nothing.
    text = generate_latest(registry).decode()
    return "".join(line for line in text.splitlines(keepends=True) if "_created" not in line).encode()


def push_run(conf: Any, task_name: str, queue: str, status: str, exception: str, cost: float) -> bool:
    """Send one run to the gateway when ``METRIC_AGG_GATEWAY_URL`` is set; returns whether it was sent."""
    if not conf.METRIC_AGG_GATEWAY_URL:
        return False
    target = str(conf.METRIC_AGG_GATEWAY_UDP_URL or conf.METRIC_AGG_GATEWAY_URL)
    try:
        address = udp_address(target)
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.sendto(run_payload(task_name, queue, status, exception, cost), address)
    except (OSError, ValueError) as exc:
        logger.warning("metrics: push to the aggregation gateway %s failed: %s", target, exc)
        return False
    return True
