"""Pure pieces of registration and dispatch: the registry parser, biz → host, round-robin over pids, the leader's
ring, the default-route parser and the Consul client's arguments."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.test import override_settings

from alarm_backends.core.consul_client import client_kwargs, consul_settings
from alarm_backends.core.host import default_route_interface, get_host_addr
from alarm_backends.management.base.dispatch import (
    dispatch_all_hosts,
    dispatch_for_instance,
    ring_kind,
    ring_mode,
    ring_targets,
    separates_labels,
)
from alarm_backends.management.base.leader import ring_leader
from alarm_backends.management.base.registry import Registry, parse_registry
from alarm_backends.management.base.service_discovery import registration_prefix
from alarm_backends.management.hashring import EmptyRingError, HashRing
from config.tools.consul import get_consul_settings

HOSTS = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def test_dispatch_all_hosts_matches_the_ring_vector() -> None:
    assert dispatch_all_hosts(HOSTS, [2, 3, 100, 5000]) == {"10.0.0.1": [100], "10.0.0.2": [3], "10.0.0.3": [2, 5000]}


def test_dispatch_keeps_host_order_and_hosts_without_targets() -> None:
    assert list(dispatch_all_hosts(["10.0.0.3", "10.0.0.1", "10.0.0.2"], [100])) == ["10.0.0.3", "10.0.0.1", "10.0.0.2"]
    assert dispatch_all_hosts(["10.0.0.3"], []) == {"10.0.0.3": []}
    assert dispatch_all_hosts([], []) == {}
    with pytest.raises(EmptyRingError):
        dispatch_all_hosts([], [2])


def test_a_hosts_items_go_round_robin_over_its_instances() -> None:
    instances = ["10.0.0.1/11", "10.0.0.1/12", "10.0.0.1/13"]
    items = list(range(8))
    shares = [dispatch_for_instance(items, instances, i) for i in instances]
    assert shares == [[0, 3, 6], [1, 4, 7], [2, 5]]
    assert dispatch_for_instance(items, instances, "10.0.0.1/99") == []


def test_registry_keys_parse_into_hosts_and_pids() -> None:
    prefix = "bkmonitorv3_community_production_default/celerybeat"
    keys = [f"{prefix}/10.0.0.1/11", f"{prefix}/10.0.0.1/12", f"{prefix}/10.0.0.2/7"]
    registry = parse_registry(prefix, keys)
    assert registry.instances == {"10.0.0.1": ["11", "12"], "10.0.0.2": ["7"]}
    assert registry.hosts == ["10.0.0.1", "10.0.0.2"]
    assert registry.has("10.0.0.1", 12) and not registry.has("10.0.0.2", 11)
    assert registry.instance_names("10.0.0.1") == ["10.0.0.1/11", "10.0.0.1/12"]


def test_registry_ignores_keys_that_are_not_host_pid(caplog: pytest.LogCaptureFixture) -> None:
    # The original split every key into exactly two parts and raised on anything else.
    prefix = "app_p_e_default/run_access"
    keys = [f"{prefix}/10.0.0.1/11", f"{prefix}/stray", f"{prefix}/10.0.0.2/1/extra", f"{prefix}-data/10.0.0.9/1"]
    assert parse_registry(prefix, keys).instances == {"10.0.0.1": ["11"]}
    assert caplog.text.count("not a <host>/<pid> registration") == 3


def test_registration_prefix_names_app_platform_environment_cluster_and_command() -> None:
    conf = SimpleNamespace(APP_CODE="bkmonitorv3", PLATFORM="community", ENVIRONMENT="production")
    assert registration_prefix("celerybeat", conf) == "bkmonitorv3_community_production_default/celerybeat"


def test_the_leader_is_the_owner_of_the_default_business() -> None:
    conf = SimpleNamespace(DEFAULT_BK_BIZ_ID=2)
    assert ring_leader(Registry({h: ["1"] for h in HOSTS}), conf) == "10.0.0.3"
    assert ring_leader(Registry({"10.0.0.1": ["1"], "10.0.0.2": ["1"]}), conf) == "10.0.0.1"
    assert ring_leader(Registry({"10.0.0.2": ["1"], "10.0.0.3": ["1"]}), conf) == "10.0.0.3"
    assert ring_leader(Registry({}), conf) is None


def test_ring_targets_are_the_include_list_and_the_default_business_sorted() -> None:
    conf = SimpleNamespace(BKMONITOR_WORKER_INCLUDE_LIST=[5000, 3, 100, 3], DEFAULT_BK_BIZ_ID=2)
    assert ring_targets(conf) == [2, 3, 100, 5000]


ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth1\t00000000\t0101A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth2\t00000000\t010300C0\t0002\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""


def test_default_route_interface_is_the_up_default_route_with_the_lowest_metric() -> None:
    assert default_route_interface(ROUTES) == "eth0"  # eth2's route is down (flags without RTF_UP)
    assert default_route_interface(ROUTES.splitlines()[0] + "\neth0\t000200C0\t0\t0001\t0\t0\t0\t00FFFFFF\n") is None
    assert default_route_interface("") is None


def test_host_addr_setting_wins_and_is_checked() -> None:
    with override_settings(HOST_ADDR="10.9.8.7"):
        assert get_host_addr() == "10.9.8.7"
    with override_settings(HOST_ADDR="not-an-ip"), pytest.raises(ValueError, match="HOST_ADDR='not-an-ip'"):
        get_host_addr()
    with override_settings(HOST_ADDR=""):
        assert get_host_addr().count(".") == 3


def test_consul_client_arguments_plain_and_https() -> None:
    plain = get_consul_settings({"CONSUL_HOST": "c", "CONSUL_PORT": "8600", "CONSUL_HTTP_TOKEN": "tok"})
    assert client_kwargs(plain, timeout=2) == {
        "host": "c",
        "port": 8600,
        "scheme": "http",
        "token": "tok",
        "connections_timeout": 2,
    }
    tls = get_consul_settings({"CONSUL_HOST": "c", "BK_CONSUL_HTTPS_PORT": "8501", "BK_HOME": "/bk"})
    kwargs = client_kwargs(tls, timeout=3)
    assert (kwargs["scheme"], kwargs["port"], kwargs["token"]) == ("https", 8501, None)
    assert kwargs["verify"] == "/bk/cert/bkce-root.crt"
    assert kwargs["cert"] == ("/bk/cert/consul-client.pem", "/bk/cert/consul-client-key.pem")


def test_consul_settings_come_from_the_overridable_settings() -> None:
    with override_settings(CONSUL_CLIENT_HOST="127.0.0.9", CONSUL_CLIENT_PORT=8509, CONSUL_ACL_TOKEN="t"):
        agent = consul_settings()
    assert (agent.address, agent.token) == ("http://127.0.0.9:8509", "t")


# 10.0.0.1 + "2…" collides with 10.0.0.12 + "…": the two rings give some business ids different owners.
COLLIDING = ["10.0.0.1", "10.0.0.2", "10.0.0.12"]


@pytest.mark.parametrize(
    ("value", "mode"),
    [(True, "separate"), ("true", "separate"), ("TRUE", "separate"), (False, "original"), ("false", "original"),
     ("auto", "auto"), ("Auto", "auto")],
)  # fmt: skip
def test_ring_mode_reads_the_setting_and_its_raw_overrides(value: object, mode: str) -> None:
    assert ring_mode(SimpleNamespace(HASH_RING_SEPARATE_LABELS=value)) == mode


def test_auto_separates_labels_only_when_every_registered_host_announces_it() -> None:
    auto = SimpleNamespace(HASH_RING_SEPARATE_LABELS="auto")
    hosts = {host: ["1"] for host in COLLIDING}
    assert separates_labels(Registry(hosts, frozenset(COLLIDING)), auto)
    assert not separates_labels(Registry(hosts, frozenset(COLLIDING[:2])), auto)  # 10.0.0.12 runs the original
    assert not separates_labels(Registry({}, frozenset(COLLIDING)), auto)
    assert not separates_labels(None, auto)
    # An announcement from a host that is not registered (yet, or any more) counts for nothing.
    assert separates_labels(Registry({"10.0.0.1": ["1"]}, frozenset(COLLIDING)), auto)
    # The operator's explicit choice wins either way.
    partial = Registry(hosts, frozenset(COLLIDING[:2]))
    assert separates_labels(partial, SimpleNamespace(HASH_RING_SEPARATE_LABELS=True))
    assert not separates_labels(Registry(hosts, frozenset(COLLIDING)), SimpleNamespace(HASH_RING_SEPARATE_LABELS=False))


def test_the_leader_follows_the_ring_in_force() -> None:
    original, separated = HashRing(COLLIDING), HashRing(COLLIDING, separate_labels=True)
    biz = next(b for b in range(1, 5000) if original.get_node(b) != separated.get_node(b))
    hosts = {host: ["1"] for host in COLLIDING}
    auto = SimpleNamespace(HASH_RING_SEPARATE_LABELS="auto", DEFAULT_BK_BIZ_ID=biz)
    assert ring_leader(Registry(hosts, frozenset(COLLIDING)), auto) == separated.get_node(biz)
    assert ring_leader(Registry(hosts, frozenset(COLLIDING[:2])), auto) == original.get_node(biz)


def test_ring_kind_names_the_ring_and_why() -> None:
    auto = SimpleNamespace(HASH_RING_SEPARATE_LABELS="auto")
    hosts = {host: ["1"] for host in COLLIDING}
    assert ring_kind(Registry(hosts, frozenset(COLLIDING)), auto) == (
        "ring: labels separated (auto: every registered host announces this platform's ring)"
    )
    assert ring_kind(Registry(hosts, frozenset(COLLIDING[:2])), auto) == (
        "ring: the original's (auto: 10.0.0.12 announces nothing (the original?)): the same owners as hosts of the "
        "original"
    )
    assert ring_kind(None, SimpleNamespace(HASH_RING_SEPARATE_LABELS=False)).startswith(
        "ring: the original's (HASH_RING_SEPARATE_LABELS=false)"
    )
