"""Clusters: several independent back ends sharing one deployment, each handling the targets routed to it.

A cluster has a name (``BK_MONITOR_ALARM_BACKEND_CLUSTER_NAME``, default ``default``), a four-digit code and an
ordered list of routing rules. Rules are tried in order; the first rule whose matcher accepts a target decides which
cluster owns it, and a ``(default, true)`` biz rule is appended unless the biz rules already end with a ``true``
matcher, so every business has an owner. The name also scopes queue names, Consul paths and lock keys.
"""

from __future__ import annotations

import enum
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

DEFAULT = "default"
NAME_RE = re.compile(r"^[a-z0-9_-]{1,64}$")

Target = str | int | float


class TargetType(enum.Enum):
    biz = "biz"
    alert_data_id = "alert_data_id"


def check_name(name: str) -> str:
    """Lower-cased; only ``[a-z0-9_-]``, at most 64 characters."""
    lowered = str(name).lower()
    if not NAME_RE.match(lowered):
        raise ValueError(f"invalid cluster name {name!r}: use 1-64 characters from a-z, 0-9, '-' and '_'")
    return lowered


# What a queue name of this platform is made of: cluster names are [a-z0-9_-] and the queues [a-z_]. Brokers take
# almost any name, so a typo or a shell-quoting accident (`-Q 'celery cron'`) would be consumed silently.
QUEUE_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,255}$")


def queue_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a queue of this platform, or None."""
    if not QUEUE_NAME_RE.match(name):
        return "only letters, digits and '_', '-', '.', ':' are used in the platform's queue names"
    if name.startswith("amq."):
        return "names starting with 'amq.' are reserved by AMQP brokers"
    return None


def check_code(code: str | int) -> str:
    """A number rendered as four zero-padded digits (``0`` → ``0000``)."""
    try:
        number = int(code)
    except (TypeError, ValueError):
        raise ValueError(f"invalid cluster code {code!r}: must be an integer 0-9999") from None
    if not 0 <= number <= 9999:
        raise ValueError(f"invalid cluster code {code!r}: must be an integer 0-9999")
    return str(number).zfill(4)


# --- matchers -------------------------------------------------------------------------------------------------

_METHODS: dict[str, Callable[[Any, list[Any]], bool]] = {
    "eq": lambda v, values: v in values,
    "neq": lambda v, values: v not in values,
    "gt": lambda v, values: any(v > x for x in values),
    "gte": lambda v, values: any(v >= x for x in values),
    "lt": lambda v, values: any(v < x for x in values),
    "lte": lambda v, values: any(v <= x for x in values),
    "reg": lambda v, values: any(re.search(str(x), str(v)) for x in values),
    "nreg": lambda v, values: not any(re.search(str(x), str(v)) for x in values),
}


def _as_number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _match_condition(config: Sequence[Mapping[str, Any]], target: Target) -> bool:
    """``[{"method": "eq", "value": [2, 3]}, {"condition": "or", "method": "gt", "value": [100]}]``.

    Conditions joined by ``and`` form a group; ``or`` starts a new group; the target matches if any group does.
    """
    groups: list[list[Mapping[str, Any]]] = []
    for i, cond in enumerate(config):
        if i == 0 or cond.get("condition", "and") == "or":
            groups.append([])
        groups[-1].append(cond)

    def ok(cond: Mapping[str, Any]) -> bool:
        method = _METHODS.get(cond.get("method", "eq"))
        if method is None:
            raise ValueError(f"unknown condition method {cond.get('method')!r}")
        values = cond.get("value", [])
        values = values if isinstance(values, list) else [values]
        # Targets arrive as ints or strings depending on the caller: compare like with like.
        if isinstance(target, int | float):
            return method(float(target), [_as_number(x) for x in values])
        return method(str(target), [str(x) for x in values])

    return any(all(ok(cond) for cond in group) for group in groups)


MATCHERS: dict[str, Callable[[Any, Target], bool]] = {
    "true": lambda _config, _target: True,
    "false": lambda _config, _target: False,
    "condition": _match_condition,
}


@dataclass(frozen=True)
class RoutingRule:
    target_type: TargetType
    cluster_name: str
    matcher_type: str
    matcher_config: Any = None
    description: str = ""

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RoutingRule:
        try:
            target_type = TargetType(str(raw["target_type"]).lower())
        except (KeyError, ValueError):
            raise ValueError(f"routing rule {dict(raw)!r}: target_type must be one of biz, alert_data_id") from None
        matcher_type = raw.get("matcher_type", "")
        if matcher_type not in MATCHERS:
            raise ValueError(f"routing rule {dict(raw)!r}: matcher_type must be one of {', '.join(MATCHERS)}")
        return cls(
            target_type=target_type,
            cluster_name=check_name(raw.get("cluster_name", "")),
            matcher_type=matcher_type,
            matcher_config=raw.get("matcher_config"),
            description=raw.get("description", ""),
        )

    def match(self, target: Target) -> bool:
        return MATCHERS[self.matcher_type](self.matcher_config, target)


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
