"""A cluster's name, code and routing rules, parsed and checked (pure: no I/O, no settings).

``alarm_backends.core.cluster`` builds this process's cluster from settings with these; the settings' validation
(``config.tools.validation``) uses the same parsers, so a bad value is refused with the message that names it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
