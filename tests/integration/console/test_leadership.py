"""The leadership page: the lease, the standbys and the failovers as real schedulers leave them in the store, and
the Consul ring (the in-repo fake agent, or the real one ``CONSUL_HTTP_ADDR`` names) with the owner of a business
id. Consul down or not configured is said on the page, and the lease still shows."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest
from celery import Celery
from django.test import override_settings
from prometheus_client import REGISTRY

from alarm_backends.management.base.service_discovery import ConsulRegistration
from patches.redbeat.schedulers import RedBeatScheduler
from tests.fakeconsul.fixture import ConsulAgent, private_ring
from tests.integration.conftest import wait_for
from tests.integration.console.conftest import signed_in
from tests.integration.redbeat_helpers import store
from tests.net import free_port

pytestmark = pytest.mark.redis

# With DEFAULT_BK_BIZ_ID 2 and hosts 10.0.0.1 and 10.0.0.3 on the beats' ring, the original's ring (the vectors of
# tests/integration/test_consul_leader.py, `hash_ring`'s output there) gives 100 to .1 and 2, 3, 5000 to .3.
OWNERS = {100: "10.0.0.1", 2: "10.0.0.3", 3: "10.0.0.3", 5000: "10.0.0.3"}


def roles(page: str) -> list[str]:
    return re.findall(r'<tr data-role="([a-z]+)">', page)


def field(page: str, name: str) -> str:
    found = re.search(rf'data-field="{name}">([^<]*)', page)
    assert found, f"no {name} on the page"
    return found.group(1)


@pytest.fixture
def beats(app: Celery) -> Iterator[tuple[RedBeatScheduler, RedBeatScheduler]]:
    app.conf.redbeat_lock_timeout = 2  # a lease short enough to run out, and a beat to go quiet, within the test
    leader, standby = RedBeatScheduler(app=app), RedBeatScheduler(app=app)
    leader.tick()
    standby.tick()
    assert leader.leading and not standby.leading
    yield leader, standby
    leader.close()
    standby.close()


def test_the_lease_its_standby_a_failover_and_a_clean_stop(beats: tuple[RedBeatScheduler, RedBeatScheduler]) -> None:
    leader, standby = beats
    reader = signed_in("reader")
    page = reader.get("/leadership/").content.decode()
    me = f"host {socket.gethostname()}"
    assert f"a beat leads ({me}, pid" in page and sorted(roles(page)) == ["leader", "standby"]
    assert (field(page, "terms"), field(page, "failovers")) == ("1", "0")
    # The leader stops renewing (killed, paused): its lease runs out and the standby takes over — a failover, as the
    # scheduler's own counter counts it.
    counted = REGISTRY.get_sample_value("bkmonitor_beat_failovers_total") or 0
    wait_for(lambda: store().get("redbeat::lock") is None, 5, "the leader's lease to run out")
    standby.tick()
    assert standby.leading and REGISTRY.get_sample_value("bkmonitor_beat_failovers_total") == counted + 1
    page = reader.get("/leadership/").content.decode()
    assert (field(page, "terms"), field(page, "failovers").split(" (")[0]) == ("2", "1")
    assert "(last " in field(page, "failovers") and "Leading since" in page
    # The old leader has not tried since: once past the lock's timeout it could not take over in time.
    wait_for(lambda: "quiet" in roles(reader.get("/leadership/").content.decode()), 10, "the old leader to go quiet")
    # A clean stop leaves the beats seen at once, and the lock is handed over, not failed over.
    leader.close()
    standby.close()
    page = reader.get("/leadership/").content.decode()
    assert roles(page) == [] and "no beat holds the lock" in page
    assert store().hget("redbeat::leader", "released") == "1" and field(page, "failovers").startswith("1")


def test_the_ring_names_its_hosts_its_advised_leader_and_a_business_owner(
    app: Celery, consul_agent: ConsulAgent
) -> None:
    with private_ring(consul_agent, DEFAULT_BK_BIZ_ID=2, BKMONITOR_WORKER_INCLUDE_LIST=[3, 100, 5000]):
        registered = [ConsulRegistration("celerybeat", host_addr=host, pid=pid) for host, pid in
                      (("10.0.0.1", 11), ("10.0.0.3", 31), ("10.0.0.3", 32))]  # fmt: skip
        try:
            for registration in registered:
                assert registration.register([2])
            reader = signed_in("reader")
            for biz, owner in OWNERS.items():
                page = reader.get("/leadership/", {"biz": str(biz)}).content.decode()
                assert f"Business {biz} is owned by <strong>{owner}</strong>" in page
            hosts = re.findall(r'<tr data-host="([^"]+)"><td>[^<]+</td><td>(\d+)</td><td>(yes)?</td>', page)
            assert hosts == [("10.0.0.1", "1", ""), ("10.0.0.3", "2", "yes")]  # .3 owns DEFAULT_BK_BIZ_ID 2
            refused = reader.get("/leadership/", {"biz": "two"}).content.decode()
            assert "business id &#x27;two&#x27;: a whole number is needed" in refused and "is owned by" not in refused
        finally:
            for registration in registered:
                registration.unregister()


def test_consul_down_is_named_and_the_lease_still_shows(beats: tuple[RedBeatScheduler, RedBeatScheduler]) -> None:
    port = free_port()
    with override_settings(CONSUL_ENABLED=True, CONSUL_CLIENT_HOST="127.0.0.1", CONSUL_CLIENT_PORT=port):
        page = signed_in("reader").get("/leadership/", {"biz": "2"})
    text = page.content.decode()
    assert page.status_code == 200 and "the ring cannot be read" in text and f"127.0.0.1:{port}" in text
    assert "a beat leads (" in text and sorted(roles(text)) == ["leader", "standby"]


def test_without_consul_this_host_leads_and_owns_every_business(app: Celery) -> None:
    with override_settings(CONSUL_ENABLED=False):
        page = signed_in("reader").get("/leadership/", {"biz": "5000"}).content.decode()
    assert "single-node mode: Consul is not configured" in page
    assert re.search(r"Business 5000 is owned by <strong>[^<]+</strong>", page)
    # No beat runs: the page says so instead of failing.
    assert "no beat holds the lock" in page and roles(page) == []
