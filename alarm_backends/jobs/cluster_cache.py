"""This cluster's identity and routing rules, cached in the cache DB for readers that do not load settings.

The rules written are the effective ones, in matching order per target type, including the ``(default, true)``
biz rule the cluster appends, so a reader sees exactly how targets are routed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from alarm_backends.core.cluster import Cluster, get_cluster
from alarm_backends.core.storage.redis import CACHE, key
from alarm_backends.jobs.records import replace_hash


def rules_of(cluster: Cluster) -> list[dict[str, Any]]:
    """The effective routing rules as plain dicts, grouped by target type in matching order."""
    return [
        {
            "target_type": rule.target_type.value,
            "cluster_name": rule.cluster_name,
            "matcher_type": rule.matcher_type,
            "matcher_config": rule.matcher_config,
            "description": rule.description,
        }
        for rules in cluster.rules_by_type.values()
        for rule in rules
    ]


def cache_cluster_info() -> dict[str, str]:
    """Replace ``key("cluster", "info")`` with name, code, is_default (1/0), routing_rules (JSON) and ts."""
    cluster = get_cluster()
    info = {
        "name": cluster.name,
        "code": cluster.code,
        "is_default": "1" if cluster.is_default() else "0",
        "routing_rules": json.dumps(rules_of(cluster), ensure_ascii=False, default=str),
        "ts": str(time.time()),
    }
    replace_hash(CACHE, key("cluster", "info"), info)
    return info
