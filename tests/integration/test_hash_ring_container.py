"""``manage.py hash_ring`` in container mode with Consul configured, against an agent (the fake unless
``CONSUL_HTTP_ADDR`` names a real one).

Container beats neither register nor consult the ring (``uses_ring`` is false there), so the command says the ring
does not pick the leader, still shows what is registered (hosts outside the cluster may be), and treats an empty
ring as expected rather than as an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from alarm_backends.management.base.service_discovery import ConsulRegistration
from tests.fakeconsul.fixture import ConsulAgent, private_ring

HEADER = "container mode (DEPLOY_MODE=kubernetes): the ring does not pick the leader — one beat runs per deployment"


@pytest.fixture
def container_ring(consul_agent: ConsulAgent) -> Iterator[dict[str, Any]]:
    with private_ring(consul_agent, IS_CONTAINER_MODE=True, BKMONITOR_WORKER_INCLUDE_LIST=[3, 100, 5000],
                      DEFAULT_BK_BIZ_ID=2) as overrides:  # fmt: skip
        yield overrides


def hash_ring(*args: str) -> list[str]:
    out = StringIO()
    call_command("hash_ring", "--type", "celerybeat", *args, stdout=out)
    return out.getvalue().splitlines()


def test_container_mode_says_the_ring_does_not_lead_and_an_empty_one_is_no_error(
    container_ring: dict[str, Any],
) -> None:
    header, empty = hash_ring()
    assert header.startswith(HEADER)
    assert f"{container_ring['APP_CODE']}_community_development_default/celerybeat" in header
    assert empty.startswith(f"no host is registered under {container_ring['APP_CODE']}_")


def test_container_mode_still_shows_hosts_registered_from_outside(container_ring: dict[str, Any]) -> None:
    one, three = (ConsulRegistration("celerybeat", host_addr=h, pid=1) for h in ("10.0.0.1", "10.0.0.3"))
    one.register()
    three.register()
    try:
        header, *ring = hash_ring()
        assert header.startswith(HEADER)
        assert ring == ["host: 10.0.0.1", "- 100", "host: 10.0.0.3", "- 2", "- 3", "- 5000"]
        assert hash_ring("--host", "10.0.0.1")[1:] == ["host: 10.0.0.1", "- 100"]
    finally:
        one.unregister()
        three.unregister()
