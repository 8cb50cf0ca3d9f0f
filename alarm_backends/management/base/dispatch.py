"""Dispatch: registered hosts → hash ring; targets → their host; a host's items round-robin over its instances.

Pure functions over plain data, so the original's assignment can be checked against exact vectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from django.conf import settings

from alarm_backends.core.cluster import filter_bk_biz_ids
from alarm_backends.management.hashring import HashRing, as_weights

T = TypeVar("T")


@lru_cache(maxsize=2)
def _cached_ring(weights: frozenset[tuple[str, int]], separate_labels: bool) -> HashRing:
    return HashRing(dict(weights), separate_labels=separate_labels)


def ring_kind() -> str:
    """Which ring is in force, as ``hash_ring`` reports it."""
    if settings.HASH_RING_SEPARATE_LABELS:
        return "ring: labels separated (HASH_RING_SEPARATE_LABELS=true): every host must run this platform"
    return "ring: the original's (HASH_RING_SEPARATE_LABELS=false): the same owners as hosts of the original"


def ring_for(hosts: Sequence[str] | Mapping[str, int]) -> HashRing:
    """The ring of ``hosts`` (weight 1 each unless given), built once per host set: building one hashes 65536
    labels (~0.1 s), and beats ask every tick while membership rarely changes. The ring does not depend on the
    order of the hosts, so neither does the cache."""
    return _cached_ring(frozenset(as_weights(hosts).items()), bool(settings.HASH_RING_SEPARATE_LABELS))


def dispatch_all_hosts(hosts: Sequence[str] | Mapping[str, int], targets: Iterable[T]) -> dict[str, list[T]]:
    """Each host's targets, hosts in the given order (every host present, possibly with no target).

    With no target nothing is asked of the ring, so an empty host list is fine then; with targets and no host the
    ring raises :class:`~alarm_backends.management.hashring.EmptyRingError`.
    """
    weights = as_weights(hosts)
    assigned: dict[str, list[T]] = {host: [] for host in weights}
    targets = list(targets)
    if targets:
        ring = ring_for(weights)
        for target in targets:
            assigned[ring.get_node(target)].append(target)
    return assigned


def dispatch_for_instance(host_targets: Sequence[T], instances: Sequence[str], instance: str) -> list[T]:
    """The share of one instance (``host/pid``) of its host's items: item ``i`` goes to instance ``i % n``."""
    if instance not in instances:
        return []
    index = list(instances).index(instance)
    return [item for i, item in enumerate(host_targets) if i % len(instances) == index]


def ring_targets(conf: Any = settings) -> list[int]:
    """The business ids dispatched over the ring: ``BKMONITOR_WORKER_INCLUDE_LIST`` plus ``DEFAULT_BK_BIZ_ID``,
    those routed to this cluster, sorted."""
    include = getattr(conf, "BKMONITOR_WORKER_INCLUDE_LIST", None) or []
    ids = {int(biz) for biz in include} | {int(conf.DEFAULT_BK_BIZ_ID)}
    return sorted(filter_bk_biz_ids(ids))
