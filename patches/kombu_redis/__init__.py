"""The Redis broker transport of the platform: kombu's, without its loss windows (``reliable``).

``install()`` checks the kombu internals the transport relies on (:func:`check_kombu`, the upgrade gate) and points
the ``redis``, ``rediss`` and ``sentinel`` broker URLs at its classes, also for a process that resolved them before;
the backend app calls it when it loads, with the transport ``BROKER_REDIS_TRANSPORT`` names (``kombu``: kombu's own,
the original's), so every worker and beat of the platform uses it. The URLs keep their schemes, so logs and errors
name the broker as ``redis://…``.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import kombu
import kombu.transport
from kombu.transport import TRANSPORT_ALIASES, virtual
from kombu.transport import redis as stock

from patches.kombu_redis.reliable import SentinelTransport, Transport

__all__ = ["KombuChangedError", "SentinelTransport", "Transport", "check_kombu", "install"]

# kombu's internals the transport relies on, in one place: the upgrade gate. :func:`check_kombu` (run by
# ``install``) fails at start, naming the one that changed, instead of when a message would be lost.
PRIVATE_METHODS = {
    # the poller drives a consumer through these two (reliable.ReliableChannel overrides them)
    "Channel._brpop_start": (stock.Channel, "_brpop_start", ("timeout",)),
    "Channel._brpop_read": (stock.Channel, "_brpop_read", ("options",)),
    "Channel._flush_brpop_reauth": (stock.Channel, "_flush_brpop_reauth", ()),
    "Channel._get_message_priority": (stock.Channel, "_get_message_priority", ("message", "reverse")),
    "Channel._lookup": (stock.Channel, "_lookup", ("exchange", "routing_key")),
    "Channel._q_for_pri": (stock.Channel, "_q_for_pri", ("queue", "pri")),
    "QoS._remove_from_indices": (stock.QoS, "_remove_from_indices", ("delivery_tag", "pipe")),
    "Transport._deliver": (virtual.Transport, "_deliver", ("message", "queue")),
}
# attributes: the poll connection and the time its command was sent (kombu's health check reads both), the queue
# rotation, the poller's channels and a QoS's received messages.
PRIVATE_CLASS_ATTRIBUTES = {"Channel._in_poll": (stock.Channel, "_in_poll"),
                            "Channel._brpop_sent_at": (stock.Channel, "_brpop_sent_at"),
                            "Channel._update_queue_cycle": (stock.Channel, "_update_queue_cycle")}  # fmt: skip
PRIVATE_INSTANCE_ATTRIBUTES = {
    "MultiChannelPoller._channels": (stock.MultiChannelPoller, "_channels"),
    "QoS._delivered": (lambda: virtual.QoS(SimpleNamespace(do_restore=False)), "_delivered"),
}
# kombu resolves a URL scheme to its class once per process and keeps it here (kombu.transport.get_transport_cls):
# a Connection made before install() would pin the stock class for every later one.
PRIVATE_TRANSPORT_CACHE = "_transport_cache"
ALIASES = {"redis": "Transport", "rediss": "Transport", "sentinel": "SentinelTransport"}
TRANSPORT_MODULES = {"reliable": "patches.kombu_redis.reliable", "kombu": "kombu.transport.redis"}


class KombuChangedError(RuntimeError):
    """kombu no longer has an internal the transport uses: it must be reviewed before upgrading kombu."""


def check_kombu() -> None:
    problems = []
    for label, (owner, name, params) in PRIVATE_METHODS.items():
        method = getattr(owner, name, None)
        if method is None:
            problems.append(f"{label} is gone")
            continue
        missing = [param for param in params if param not in inspect.signature(method).parameters]
        if missing:
            problems.append(f"{label} no longer takes {', '.join(missing)}")
    for label, (owner, name) in PRIVATE_CLASS_ATTRIBUTES.items():
        if not hasattr(owner, name):
            problems.append(f"{label} is gone")
    for label, (make, name) in PRIVATE_INSTANCE_ATTRIBUTES.items():
        if not hasattr(make(), name):
            problems.append(f"{label} is gone")
    if not isinstance(getattr(kombu.transport, PRIVATE_TRANSPORT_CACHE, None), dict):
        problems.append(f"kombu.transport.{PRIVATE_TRANSPORT_CACHE} is gone")
    if problems:
        raise KombuChangedError(
            f"kombu {kombu.__version__} changed what patches/kombu_redis uses: {'; '.join(problems)}"
        )


def install(transport: str = "reliable") -> None:
    """Make the Redis broker URLs use ``transport``'s classes (idempotent; ``TRANSPORT_MODULES``), also when a
    connection of the process resolved them before, once kombu is checked (:func:`check_kombu`)."""
    if transport not in TRANSPORT_MODULES:
        raise ValueError(f"BROKER_REDIS_TRANSPORT={transport!r} must be one of {', '.join(TRANSPORT_MODULES)}")
    check_kombu()
    cache = getattr(kombu.transport, PRIVATE_TRANSPORT_CACHE)
    for alias, name in ALIASES.items():
        TRANSPORT_ALIASES[alias] = f"{TRANSPORT_MODULES[transport]}:{name}"
        cache.pop(alias, None)
