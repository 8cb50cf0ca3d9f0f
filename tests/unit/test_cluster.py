"""Cluster names, codes and ordered routing with the implicit (default, true) rule."""

from __future__ import annotations

import pytest

from alarm_backends.core.cluster import Cluster, RoutingRule, TargetType, check_code, check_name


def rule(cluster: str, matcher: str, config: object = None, target_type: str = "biz") -> RoutingRule:
    return RoutingRule.from_dict(
        {"target_type": target_type, "cluster_name": cluster, "matcher_type": matcher, "matcher_config": config}
    )


def test_names_are_lower_cased_and_checked() -> None:
    assert check_name("Cluster_A-1") == "cluster_a-1"
    for bad in ("", "a b", "a.b", "x" * 65, "集群"):
        with pytest.raises(ValueError, match="invalid cluster name"):
            check_name(bad)


def test_codes_are_four_digits() -> None:
    assert check_code("0") == "0000"
    assert check_code(12) == "0012"
    for bad in ("x", -1, 10000):
        with pytest.raises(ValueError, match="invalid cluster code"):
            check_code(bad)


def test_default_cluster_owns_everything_by_the_implicit_rule() -> None:
    default = Cluster("default", "0")
    assert default.is_default()
    assert default.rules_by_type[TargetType.biz][-1] == RoutingRule(TargetType.biz, "default", "true")
    assert default.filter(TargetType.biz, [2, 3, 100]) == [2, 3, 100]
    # No rule for alert data ids: nothing matches.
    assert default.filter(TargetType.alert_data_id, [1]) == []


def test_first_matching_rule_decides() -> None:
    rules = [
        rule("blue", "condition", [{"method": "eq", "value": [2, 3]}]),
        rule("green", "condition", [{"method": "gte", "value": [100]}]),
    ]
    blue, green, default = (Cluster(name, "1", rules) for name in ("blue", "green", "default"))
    bizs = [2, 3, 5, 100, 5000]
    assert blue.filter(TargetType.biz, bizs) == [2, 3]
    assert green.filter(TargetType.biz, bizs) == [100, 5000]
    assert default.filter(TargetType.biz, bizs) == [5]


def test_another_clusters_match_excludes_the_target_even_if_a_later_rule_would_match() -> None:
    rules = [rule("blue", "true"), rule("green", "true")]
    assert Cluster("green", "2", rules).filter(TargetType.biz, [1, 2]) == []
    assert Cluster("blue", "1", rules).filter(TargetType.biz, [1, 2]) == [1, 2]


def test_no_implicit_rule_when_biz_rules_end_with_true() -> None:
    cluster = Cluster("blue", "1", [rule("blue", "true")])
    assert [r.cluster_name for r in cluster.rules_by_type[TargetType.biz]] == ["blue"]


def test_condition_groups_and_or() -> None:
    cond = rule(
        "blue",
        "condition",
        [
            {"method": "gt", "value": [10]},
            {"condition": "and", "method": "lt", "value": [20]},
            {"condition": "or", "method": "eq", "value": [99]},
        ],
    )
    assert [t for t in (5, 15, 25, 99) if cond.match(t)] == [15, 99]
    regex = rule("blue", "condition", [{"method": "reg", "value": ["^1\\d$"]}], target_type="alert_data_id")
    assert regex.match("15") and not regex.match("150")


def test_false_matcher_and_bad_rules() -> None:
    assert not rule("blue", "false").match(1)
    with pytest.raises(ValueError, match="matcher_type"):
        rule("blue", "sometimes")
    with pytest.raises(ValueError, match="target_type"):
        rule("blue", "true", target_type="host")


def test_queue_names_are_the_originals_unless_scoped() -> None:
    """The original's queues were never prefixed (kombu's RabbitMQ and Redis transports ignore the
    queue_name_prefix it set): its names by default, so its hosts and these consume the same queues."""
    assert Cluster("default", "0").queue_name("celery_cron") == "celery_cron"
    assert Cluster("blue", "1").queue_name("celery_cron") == "celery_cron"
    assert Cluster("default", "0", scoped_names=True).queue_name("celery_cron") == "celery_cron"
    assert Cluster("blue", "1", scoped_names=True).queue_name("celery_cron") == "blue-celery_cron"
    assert Cluster("blue", "1").key("celery_lock_x") == "blue_celery_lock_x"


def test_redbeat_key_prefix_is_the_originals_unless_scoped() -> None:
    from alarm_backends.service.scheduler.config import redbeat_key_prefix

    assert redbeat_key_prefix("redbeat:", "blue", scoped=False) == "redbeat:"
    assert redbeat_key_prefix("redbeat:", "blue", scoped=True) == "redbeat:blue:"
    assert redbeat_key_prefix("redbeat:", "default", scoped=True) == "redbeat:"
