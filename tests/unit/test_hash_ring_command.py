"""``manage.py hash_ring`` without Consul (single-node mode) and with an agent that does not answer.

Without Consul the platform runs single-node and this host leads (``leader.is_leader()``); the command used to try
the client's default agent (localhost:8500) anyway and fail. No agent is needed here: the fake one is in
``tests/integration/test_hash_ring_container.py``.
"""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

ME = "10.0.0.5"
SINGLE_NODE = (
    "single-node mode: Consul is not configured (CONSUL_HOST / BK_MONITOR_CONSUL_HOST / CONSUL_HTTP_ADDR / "
    f"BK_CONSUL_HTTPS_PORT unset), so this host ({ME}) leads and owns every target\n"
)
# Targets: the include list plus DEFAULT_BK_BIZ_ID, deduplicated and sorted.
SINGLE_NODE_SETTINGS: dict[str, Any] = {
    "CONSUL_ENABLED": False,
    "IS_CONTAINER_MODE": False,
    "HOST_ADDR": ME,
    "DEFAULT_BK_BIZ_ID": 7,
    "BKMONITOR_WORKER_INCLUDE_LIST": [5000, 3, 100, 3],
}
ALL = f"host: {ME}\n- 3\n- 7\n- 100\n- 5000\n"


def hash_ring(*args: str) -> str:
    out = StringIO()
    call_command("hash_ring", *args, stdout=out)
    return out.getvalue()


@override_settings(**SINGLE_NODE_SETTINGS)
def test_single_node_says_so_and_lists_every_target_on_this_host() -> None:
    assert hash_ring() == SINGLE_NODE + ALL
    # Any registered command's ring: there is no registration in single-node mode, so the same answer.
    assert hash_ring("--type", "run_access-data") == SINGLE_NODE + ALL


@override_settings(**SINGLE_NODE_SETTINGS)
def test_single_node_host_localhost_is_this_host() -> None:
    assert hash_ring("--host", "localhost") == SINGLE_NODE + ALL
    assert hash_ring("--host", ME) == SINGLE_NODE + ALL
    assert hash_ring("--host", "localhost", "--biz_id", "7") == SINGLE_NODE + f"host: {ME}\n- 7\n"


@override_settings(**SINGLE_NODE_SETTINGS)
def test_single_node_biz_id_filter() -> None:
    assert hash_ring("--biz_id", "100") == SINGLE_NODE + f"host: {ME}\n- 100\n"
    # The original printed nothing for a business no host owns; so does single-node mode, below its header.
    assert hash_ring("--biz_id", "2") == SINGLE_NODE


@override_settings(**SINGLE_NODE_SETTINGS)
def test_single_node_another_host_owns_nothing_and_is_told_why() -> None:
    note = f"10.0.0.9 owns no target: in single-node mode the only host is this one ({ME})\n"
    assert hash_ring("--host", "10.0.0.9") == SINGLE_NODE + note
    assert hash_ring("--host", "10.0.0.9", "--biz_id", "7") == SINGLE_NODE + note


@override_settings(**{**SINGLE_NODE_SETTINGS, "IS_CONTAINER_MODE": True})
def test_single_node_in_container_mode_names_the_redis_lock() -> None:
    header, *ring = hash_ring().splitlines()
    assert header.startswith("single-node mode: Consul is not configured (")
    assert "container mode (DEPLOY_MODE=kubernetes) one beat runs per deployment, elected by the Redis lock" in header
    assert f"this host ({ME}) counts as the leader" in header
    assert "\n".join(ring) + "\n" == ALL


@override_settings(**{**SINGLE_NODE_SETTINGS, "HOST_ADDR": "not-an-ip"})
def test_single_node_with_a_bad_host_addr_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="HOST_ADDR='not-an-ip' is not an IP address"):
        hash_ring()


def test_the_reason_names_an_override_when_a_consul_variable_is_set() -> None:
    # Imported here, so the other tests run (and fail on their output) against a command without the helper.
    from alarm_backends.management.commands.hash_ring import not_configured_reason

    unset = "CONSUL_HOST / BK_MONITOR_CONSUL_HOST / CONSUL_HTTP_ADDR / BK_CONSUL_HTTPS_PORT unset"
    assert not_configured_reason({}) == unset
    assert not_configured_reason({"CONSUL_HTTP_ADDR": "c:8500"}) == "CONSUL_ENABLED is overridden to false"


@pytest.mark.parametrize("container_mode", [False, True])
def test_configured_but_unreachable_agent_is_still_a_command_error_naming_it(container_mode: bool) -> None:
    unreachable = override_settings(
        CONSUL_ENABLED=True, IS_CONTAINER_MODE=container_mode, CONSUL_CLIENT_HOST="127.0.0.1", CONSUL_CLIENT_PORT=1
    )
    with unreachable, pytest.raises(CommandError, match=r"^Consul agent at http://127\.0\.0\.1:1 is unavailable"):
        hash_ring()
