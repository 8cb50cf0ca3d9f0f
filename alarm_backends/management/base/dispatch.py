"""Dispatch: registered hosts → hash ring; targets → their host; a host's items round-robin over its instances.

Pure functions over plain data, so the original's assignment can be checked against exact vectors.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from django.conf import settings
from django.utils.module_loading import import_string

from alarm_backends.core.cluster import filter_bk_biz_ids
from alarm_backends.management.base.registry import Registry
from alarm_backends.management.hashring import HashRing, as_weights

T = TypeVar("T")


@lru_cache(maxsize=2)
def _cached_ring(weights: frozenset[tuple[str, int]], separate_labels: bool) -> HashRing:
    return HashRing(dict(weights), separate_labels=separate_labels)


SEPARATE, ORIGINAL, AUTO = "separate", "original", "auto"
# The value a registered host writes under the announcement prefix (see service_discovery.ConsulRegistration):
# JSON, like every other value under the registration prefix.
ANNOUNCEMENT = json.dumps({"ring": "separate-labels"})


def ring_mode(conf: Any = settings) -> str:
    """``HASH_RING_SEPARATE_LABELS``: true → :data:`SEPARATE`, false → :data:`ORIGINAL`, "auto" → :data:`AUTO`."""
    value = getattr(conf, "HASH_RING_SEPARATE_LABELS", AUTO)
    text = str(value).strip().lower()
    if value is True or text == "true":
        return SEPARATE
    if value is False or text == "false":
        return ORIGINAL
    return AUTO


def separates_labels(registry: Registry | None, conf: Any = settings) -> bool:
    """Whether the ring of ``registry`` separates colliding labels: when an operator says so, or (``auto``) when
    every registered host announces that it runs this platform's ring. A host of the original announces nothing, so
    while one is registered every host of this platform keeps the original's owners, which that host computes."""
    mode = ring_mode(conf)
    if mode != AUTO:
        return mode == SEPARATE
    return registry is not None and bool(registry.hosts) and set(registry.hosts) <= registry.announced


def ring_kind(registry: Registry | None = None, conf: Any = settings) -> str:
    """Which ring is in force, and why, as ``hash_ring`` reports it."""
    mode = ring_mode(conf)
    if mode == SEPARATE:
        return "ring: labels separated (HASH_RING_SEPARATE_LABELS=true): every host must run this platform"
    if mode == ORIGINAL:
        return "ring: the original's (HASH_RING_SEPARATE_LABELS=false): the same owners as hosts of the original"
    if separates_labels(registry, conf):
        return "ring: labels separated (auto: every registered host announces this platform's ring)"
    hosts = registry.hosts if registry is not None else []
    quiet = [host for host in hosts if registry is not None and host not in registry.announced]
    why = f"{', '.join(quiet)} announce{'s' if len(quiet) == 1 else ''} nothing (the original?)" if quiet else "no host"
    return f"ring: the original's (auto: {why}): the same owners as hosts of the original"


def ring_for(hosts: Sequence[str] | Mapping[str, int], separate: bool | None = None) -> HashRing:
    """The ring of ``hosts`` (weight 1 each unless given), built once per host set: building one hashes 65536
    labels (~0.1 s), and beats ask every tick while membership rarely changes. The ring does not depend on the
    order of the hosts, so neither does the cache. ``separate`` None: as ``HASH_RING_SEPARATE_LABELS`` says
    without a registry (``auto`` keeps the original's)."""
    if separate is None:
        separate = separates_labels(None)
    return _cached_ring(frozenset(as_weights(hosts).items()), separate)


def dispatch_all_hosts(
    hosts: Sequence[str] | Mapping[str, int], targets: Iterable[T], separate: bool | None = None
) -> dict[str, list[T]]:
    """Each host's targets, hosts in the given order (every host present, possibly with no target).

    With no target nothing is asked of the ring, so an empty host list is fine then; with targets and no host the
    ring raises :class:`~alarm_backends.management.hashring.EmptyRingError`.
    """
    weights = as_weights(hosts)
    assigned: dict[str, list[T]] = {host: [] for host in weights}
    targets = list(targets)
    if targets:
        ring = ring_for(weights, separate)
        for target in targets:
            assigned[ring.get_node(target)].append(target)
    return assigned


def dispatch_for_instance(host_targets: Sequence[T], instances: Sequence[str], instance: str) -> list[T]:
    """The share of one instance (``host/pid``) of its host's items: item ``i`` goes to instance ``i % n``."""
    if instance not in instances:
        return []
    index = list(instances).index(instance)
    return [item for i, item in enumerate(host_targets) if i % len(instances) == index]


def strategy_targets(conf: Any = settings) -> list[int] | None:
    """The original's targets of its access rings (``run_access-data`` & co.): the business ids of the enabled
    strategies, from the function ``HASH_RING_TARGETS_SOURCE`` names (the deployment's: the strategies live in its
    database), plus ``BKMONITOR_WORKER_INCLUDE_LIST``, those routed to this cluster, sorted. None when no source
    is configured. Raises ValueError naming the setting when the source cannot be imported or called."""
    path = getattr(conf, "HASH_RING_TARGETS_SOURCE", "")
    if not path:
        return None
    try:
        source = import_string(path)
        found = [int(biz) for biz in source()]
    except Exception as exc:  # the deployment's code: any failure is reported, naming where it came from
        raise ValueError(f"HASH_RING_TARGETS_SOURCE={path!r}: {type(exc).__name__}: {exc}") from exc
    include = getattr(conf, "BKMONITOR_WORKER_INCLUDE_LIST", None) or []
    return sorted(filter_bk_biz_ids({*found, *(int(biz) for biz in include)}))


def ring_targets(conf: Any = settings) -> list[int]:
    """The business ids dispatched over the ring: ``BKMONITOR_WORKER_INCLUDE_LIST`` plus ``DEFAULT_BK_BIZ_ID``,
    those routed to this cluster, sorted."""
    include = getattr(conf, "BKMONITOR_WORKER_INCLUDE_LIST", None) or []
    ids = {int(biz) for biz in include} | {int(conf.DEFAULT_BK_BIZ_ID)}
    return sorted(filter_bk_biz_ids(ids))
