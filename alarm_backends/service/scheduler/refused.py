"""A task message refused for its content type is a lost run: say so loudly, once per message.

Celery's worker rejects (without requeueing) a message whose serializer is not in ``accept_content`` and logs it at
ERROR among its other invalid-task errors. In a fleet where the original's hosts (pickle) and this platform's (JSON)
share queues that is every message that crosses from one to the other: each one is counted here
(``bkmonitor_worker_refused_messages_total{content_type,queue}``) and logged with the setting that fixes it.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from celery import Celery
from celery.signals import task_rejected
from kombu.exceptions import ContentDisallowed

from alarm_backends.core.prometheus.metrics import WORKER_REFUSED_MESSAGES

logger = logging.getLogger("celery.worker")


def refused(app: Celery, message: Any, exc: BaseException) -> None:
    """Count and log one message ``app``'s worker refused for its content type."""
    content_type = str(getattr(message, "content_type", "") or "unknown")
    info = getattr(message, "delivery_info", None) or {}
    queue = str(info.get("routing_key") or "")
    headers = getattr(message, "headers", None) or {}
    WORKER_REFUSED_MESSAGES.labels(content_type=content_type, queue=queue).inc()
    logger.error(
        "worker: refused a %s message of task %s (id %s) on queue %s, accepting only %s: it is discarded and that "
        "run is lost; while hosts of the original (pickle) remain, set CELERY_SERIALIZER=pickle on every host of "
        "this platform (%s)",
        content_type, headers.get("task", "?"), headers.get("id", "?"), queue or "?",
        ", ".join(app.conf.accept_content or ()), exc,
    )  # fmt: skip


_watched: weakref.WeakSet[Celery] = weakref.WeakSet()


def install(app: Celery) -> None:
    """Watch ``app``'s workers for messages refused for their content type."""

    def receiver(sender: Any = None, message: Any = None, exc: BaseException | None = None, **_: Any) -> None:
        if isinstance(exc, ContentDisallowed) and getattr(sender, "app", None) is app:
            refused(app, message, exc)

    if app in _watched:  # a second set-up of the app: a message is counted once
        return
    _watched.add(app)
    task_rejected.connect(receiver, weak=False)  # a closure: kept alive by the signal
