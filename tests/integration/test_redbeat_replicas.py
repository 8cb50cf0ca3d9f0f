"""``redbeat_commit_replicas``: each schedule write waits (Redis WAIT) for replicas, but only while the master has
them. On a master of the test's own, with a replica the test attaches and detaches; the WAITs the master served are
counted by the master itself (INFO commandstats)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from patches.redbeat.store import Store
from tests.chaos.services import RedisServer
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.redis


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    master, replica = RedisServer("master", tmp_path), RedisServer("replica", tmp_path)
    try:
        yield master.start(), replica.start()
    finally:
        replica.close()
        master.close()


def waits(server: RedisServer) -> int:
    return int(server.client().info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


def replicated(store: Store) -> bool:
    """One write's wait for replicas; -> whether it was answered in time."""
    store.replicate()
    return not store.replicas_short


def online(server: RedisServer) -> int:
    info = server.client().info("replication")
    return sum(1 for name, value in info.items() if name.startswith("slave") and value.get("state") == "online")


def test_writes_wait_for_replicas_only_while_the_master_has_enough(
    servers: tuple[RedisServer, RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    master, replica = servers
    store = Store(master.client(), "redbeat:", replicas=1, replica_wait=0.2)
    writer = store.client  # WAIT counts the writes of the connection that sends it: the store's own
    with caplog.at_level(logging.INFO, logger="celery.beat"):
        writer.set("redbeat:x", 1)
        store.replicate()  # no replica: the WAIT runs out, said once
        store.replicate()  # still none online: no WAIT, no second warning
        assert waits(master) == 1
        assert caplog.text.count("reached 0 of 1 replica(s) within 0.2s") == 1

        replica.client().replicaof(master.host, master.port)
        wait_for(lambda: online(master) == 1, 15, "the replica online")
        writer.set("redbeat:x", 2)
        # A replica online again: the writes wait for it (briefly, until one is answered in time), and reach it.
        wait_for(lambda: replicated(store), 10, "a write to reach the replica")
        assert "schedule writes reach 1 replica(s) again" in caplog.text
        assert replica.client().get("redbeat:x") == "2"  # WAIT answered: the replica holds the write
        before = waits(master)
        store.replicate()
        assert waits(master) == before + 1  # the full wait again, answered at once

        replica.client().replicaof("NO", "ONE")
        wait_for(lambda: master.client().info("replication")["connected_slaves"] == 0, 15, "the replica detached")
        store.replicate()  # gone again: one WAIT falls short, then none
        store.replicate()
        assert waits(master) == before + 2
        assert caplog.text.count("reached 0 of 1 replica(s) within 0.2s") == 2
