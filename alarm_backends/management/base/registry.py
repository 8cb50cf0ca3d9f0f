"""Who is on a ring: the instances registered under one Consul prefix, parsed from its keys (pure: no I/O).
``service_discovery`` reads the keys; ``dispatch`` builds the ring from the hosts."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registry:
    """The registered instances under one prefix: host → pids, hosts in Consul's (sorted) key order."""

    instances: dict[str, list[str]] = field(default_factory=dict)
    # Hosts announcing that they run this platform's ring (see ConsulRegistration.announcement_path).
    announced: frozenset[str] = frozenset()

    @property
    def hosts(self) -> list[str]:
        return list(self.instances)

    def has(self, host: str, pid: int | str) -> bool:
        return str(pid) in self.instances.get(host, [])

    def instance_names(self, host: str) -> list[str]:
        """``host/pid`` of each instance on ``host``, the unit targets are round-robined over."""
        return [f"{host}/{pid}" for pid in self.instances.get(host, [])]


def parse_registry(prefix: str, keys: Iterable[str]) -> Registry:
    """Consul keys under ``prefix/`` → :class:`Registry`. Keys that are not ``<host>/<pid>`` are ignored with a
    warning (the original's parser raised on them and took the whole dispatch down)."""
    instances: dict[str, list[str]] = {}
    start = len(prefix) + 1
    for key in keys:
        parts = key[start:].split("/") if key.startswith(prefix + "/") else []
        if len(parts) != 2 or not all(parts):
            logger.warning("consul: ignoring %r under %s: not a <host>/<pid> registration", key, prefix)
            continue
        host, pid = parts
        instances.setdefault(host, []).append(pid)
    return Registry(instances)
