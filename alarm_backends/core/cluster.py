"""Clusters: several independent back ends sharing one deployment, each handling the targets routed to it.

A cluster has a name (``BK_MONITOR_ALARM_BACKEND_CLUSTER_NAME``, default ``default``), a four-digit code and an
ordered list of routing rules. Rules are tried in order; the first rule whose matcher accepts a target decides which
cluster owns it, and a ``(default, true)`` biz rule is appended unless the biz rules already end with a ``true``
matcher, so every business has an owner. The name also scopes queue names, Consul paths and lock keys.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

# The parsers live with the settings' validation, which uses them too; product code imports them from here.
from config.tools.cluster import (
    DEFAULT,
    MATCHERS,
    NAME_RE,
    QUEUE_NAME_RE,
    RoutingRule,
    Target,
    TargetType,
    check_code,
    check_name,
    queue_name_problem,
)

__all__ = [
    "DEFAULT",
    "MATCHERS",
    "NAME_RE",
    "QUEUE_NAME_RE",
    "Cluster",
    "RoutingRule",
    "Target",
    "TargetType",
    "check_code",
    "check_name",
    "filter_bk_biz_ids",
    "get_cluster",
    "queue_name_problem",
    "reset_cluster",
]


@dataclass
class Cluster:
    name: str
    code: str
    routing_rules: list[RoutingRule] = field(default_factory=list)
    scoped_names: bool = False  # CLUSTER_SCOPED_NAMES: queue names carry the cluster's prefix

    def __post_init__(self) -> None:
        self.name = check_name(self.name)
        self.code = check_code(self.code)
        self.rules_by_type: dict[TargetType, list[RoutingRule]] = defaultdict(list)
        for rule in self.routing_rules:
            self.rules_by_type[rule.target_type].append(rule)
        biz_rules = self.rules_by_type[TargetType.biz]
        if not biz_rules or biz_rules[-1].matcher_type != "true":
            biz_rules.append(RoutingRule(TargetType.biz, DEFAULT, "true"))

    @classmethod
    def from_settings(cls, conf: Any = settings) -> Cluster:
        """The cluster of the settings; an invalid value is a ValueError naming the variable it comes from."""
        for variable, check, value in (
            ("BK_MONITOR_ALARM_BACKEND_CLUSTER_NAME", check_name, conf.ALARM_BACKEND_CLUSTER_NAME),
            ("BK_MONITOR_ALARM_BACKEND_CLUSTER_CODE", check_code, conf.ALARM_BACKEND_CLUSTER_CODE),
        ):
            try:
                check(value)
            except ValueError as exc:
                raise ValueError(f"{variable}: {exc}") from None
        try:
            rules = [RoutingRule.from_dict(raw) for raw in conf.ALARM_BACKEND_CLUSTER_ROUTING_RULES]
        except ValueError as exc:
            raise ValueError(f"ALARM_BACKEND_CLUSTER_ROUTING_RULES: {exc}") from None
        return cls(conf.ALARM_BACKEND_CLUSTER_NAME, conf.ALARM_BACKEND_CLUSTER_CODE, rules,
                   bool(conf.CLUSTER_SCOPED_NAMES))  # fmt: skip

    def is_default(self) -> bool:
        return self.name == DEFAULT

    def owner(self, target_type: TargetType, target: Target) -> str | None:
        """The cluster the first matching rule names, or None when no rule matches."""
        for rule in self.rules_by_type[target_type]:
            if rule.match(target):
                return rule.cluster_name
        return None

    def match(self, target_type: TargetType, target: Target) -> bool:
        return self.owner(target_type, target) == self.name

    def filter(self, target_type: TargetType, targets: Iterable[Target]) -> list[Target]:
        return [t for t in targets if self.match(target_type, t)]

    def queue_name(self, queue: str) -> str:
        """The broker queue for this cluster: the original's name, or with ``scoped_names`` (``CLUSTER_SCOPED_NAMES``)
        ``<cluster>-<queue>`` outside the default cluster.

        The original set ``broker_transport_options={"queue_name_prefix": ...}``, which kombu's RabbitMQ and Redis
        transports ignore: its queues were never prefixed, and clusters on one vhost consumed each other's queues.
        Its names stay the default, since its hosts consume them during a rolling upgrade; scoped names fix that bug.
        """
        return f"{self.name}-{queue}" if self.scoped_names and not self.is_default() else queue

    def key(self, name: str) -> str:
        """A cluster-scoped key, e.g. for locks: ``<cluster>_<name>``."""
        return f"{self.name}_{name}"


_lock = threading.Lock()
_cluster: Cluster | None = None


def get_cluster() -> Cluster:
    """This process's cluster, built once from settings (the original rebuilt it on every call: its cache
    timestamp was never updated)."""
    global _cluster
    with _lock:
        if _cluster is None:
            _cluster = Cluster.from_settings()
        return _cluster


def reset_cluster() -> None:
    """Forget the cached cluster (after settings change, e.g. in tests)."""
    global _cluster
    with _lock:
        _cluster = None


def filter_bk_biz_ids(bk_biz_ids: Iterable[int]) -> list[int]:
    """The business ids this cluster handles, in the given order."""
    return [int(b) for b in get_cluster().filter(TargetType.biz, bk_biz_ids)]
