"""Registration in Consul, the leader check, ``manage.py hash_ring`` and beat gating, against an agent.

The agent is the in-repo fake (``tests/fakeconsul``) unless ``CONSUL_HTTP_ADDR`` names a real one. Each test works
under its own APP_CODE, so its keys live under a prefix nobody else uses, and removes them afterwards.
"""

from __future__ import annotations

import json
import logging
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import consul
import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from alarm_backends.core.consul_client import ConsulUnavailableError
from alarm_backends.management.base.leader import LeaderGate, is_leader
from alarm_backends.management.base.service_discovery import ConsulRegistration
from tests.fakeconsul.fixture import ConsulAgent, private_ring
from tests.integration.beatproc import Beat
from tests.integration.conftest import wait_for
from tests.integration.redbeat_helpers import broker, duplicates, published

TTL = 10  # Consul's minimum session TTL
# Consul invalidates a session that was not renewed within twice its TTL.
EXPIRY = 2 * TTL
INCLUDE = [3, 100, 5000]  # with DEFAULT_BK_BIZ_ID 2: the ring's targets are 2, 3, 100, 5000
LOCK_TIMEOUT = 3.0
# `hash_ring` with hosts .1 and .3 registered, then with .1 alone.
BOTH = "host: 10.0.0.1\n- 100\nhost: 10.0.0.3\n- 2\n- 3\n- 5000\n"
ONLY_1 = "host: 10.0.0.1\n- 2\n- 3\n- 100\n- 5000\n"


@pytest.fixture
def ring(consul_agent: ConsulAgent) -> Iterator[dict[str, Any]]:
    """Settings for a private ring on the agent; everything under its APP_CODE is deleted afterwards."""
    with private_ring(consul_agent, CONSUL_SESSION_TTL=TTL, BKMONITOR_WORKER_INCLUDE_LIST=INCLUDE,
                      DEFAULT_BK_BIZ_ID=2) as overrides:  # fmt: skip
        yield overrides


def hash_ring(*args: str) -> str:
    """``hash_ring`` on the leader's ring unless ``--type`` says otherwise (the command's default is the
    original's, ``run_access-data``)."""
    out = StringIO()
    typed = args if "--type" in args else ("--type", "celerybeat", *args)
    call_command("hash_ring", *typed, stdout=out, stderr=StringIO())
    return out.getvalue()


def registration(host: str, pid: int) -> ConsulRegistration:
    return ConsulRegistration("celerybeat", host_addr=host, pid=pid)


def test_registration_path_value_and_session(ring: dict[str, Any], consul_agent: ConsulAgent) -> None:
    reg = registration("10.0.0.1", 4242)
    assert reg.register([100])
    path = f"{ring['APP_CODE']}_community_development_default/celerybeat/10.0.0.1/4242"
    assert reg.path == path
    client = consul_agent.client()
    _, entry = client.kv.get(path)
    assert json.loads(entry["Value"]) == [100]
    assert entry["Session"] == reg.session_id
    _, session = client.session.info(reg.session_id)
    assert (session["Behavior"], session["LockDelay"], session["TTL"]) == ("delete", 0, "10s")
    # Renewal is rate-limited to once per TTL/2 unless forced; a forced one rewrites the value.
    first = reg.session_id
    assert reg.register([100, 3], force=True)
    assert reg.session_id == first
    assert json.loads(client.kv.get(path)[1]["Value"]) == [100, 3]
    # A session Consul no longer knows is re-created, and the key written again under the new one.
    client.session.destroy(first)
    assert client.kv.get(path)[1] is None  # behavior=delete: the key went with the session
    assert reg.register([100], force=True)
    assert reg.session_id != first
    assert client.kv.get(path)[1]["Session"] == reg.session_id
    last = reg.session_id
    reg.unregister()
    assert client.kv.get(path)[1] is None
    assert client.session.info(last)[1] is None  # the session is destroyed, not left to expire


def test_ipv6_hosts_register_and_own_as_their_addresses(ring: dict[str, Any]) -> None:
    # An IPv6-only host registers under its address (the colons are part of the key's host segment) and is read
    # back as that address: by the ring, by `--host`, by the leader check.
    six, alone = registration("fd00::2", 7), "host: fd00::2\n- 2\n- 3\n- 100\n- 5000\n"
    assert six.register()
    assert six.path.endswith("/celerybeat/fd00::2/7")
    assert hash_ring() == alone
    with override_settings(HOST_ADDR="fd00::2"):
        assert hash_ring("--host", "localhost") == alone
    assert is_leader(six)
    other = registration("fd00::3", 8)
    other.register()
    listed = hash_ring()
    assert listed.count("host: ") == 2 and "host: fd00::3\n" in listed
    owners = [line for line in listed.splitlines() if line.startswith("- ")]
    assert sorted(owners) == sorted(["- 2", "- 3", "- 100", "- 5000"])  # every target owned once
    assert [is_leader(six), is_leader(other)].count(True) == 1
    six.unregister()
    other.unregister()


def test_is_leader_and_hash_ring_follow_the_registered_hosts(
    ring: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    one, three = registration("10.0.0.1", 11), registration("10.0.0.3", 33)
    with pytest.raises(CommandError, match=r"no host is registered under .*/celerybeat"):
        hash_ring()
    assert not is_leader(one)  # no host: no leader, and a logged reason
    assert "no host is registered under" in caplog.text
    one.register()
    three.register()
    # Hosts in Consul's key order; biz 2, 3 and 5000 on .3, 100 on .1.
    assert hash_ring() == BOTH
    assert hash_ring("--biz_id", "3") == "host: 10.0.0.3\n- 3\n"
    assert hash_ring("--host", "10.0.0.1") == "host: 10.0.0.1\n- 100\n"
    with override_settings(HOST_ADDR="10.0.0.3"):
        assert hash_ring("--host", "localhost") == "host: 10.0.0.3\n- 2\n- 3\n- 5000\n"
    assert (is_leader(one), is_leader(three)) == (False, True)
    three.unregister()
    assert hash_ring() == ONLY_1
    assert (is_leader(one), is_leader(three)) == (True, False)
    with pytest.raises(CommandError, match=r"no host is registered under .*/run_access-data"):
        hash_ring("--type", "run_access-data")
    one.unregister()


def strategy_bizs() -> list[int]:
    """A deployment's HASH_RING_TARGETS_SOURCE: the enabled strategies' business ids."""
    return [7, 2, 7]


def test_hash_ring_defaults_to_the_originals_access_ring_and_targets(ring: dict[str, Any]) -> None:
    access = [ConsulRegistration("run_access-data", host_addr=h, pid=1) for h in ("10.0.0.1", "10.0.0.3")]
    for reg in access:
        reg.register()
    try:
        out, err = StringIO(), StringIO()
        call_command("hash_ring", stdout=out, stderr=err)  # no --type: run_access-data, as the original
        assert out.getvalue() == BOTH  # the include list and DEFAULT_BK_BIZ_ID without a source
        assert "HASH_RING_TARGETS_SOURCE is not set" in err.getvalue()
        source = f"{__name__}.strategy_bizs"
        with override_settings(HASH_RING_TARGETS_SOURCE=source, BKMONITOR_WORKER_INCLUDE_LIST=[100]):
            out, err = StringIO(), StringIO()
            call_command("hash_ring", stdout=out, stderr=err)
            # The strategies' 2 and 7 plus the include list's 100; DEFAULT_BK_BIZ_ID only as a strategy's.
            assert out.getvalue() == "host: 10.0.0.1\n- 100\nhost: 10.0.0.3\n- 2\n- 7\n"
            assert "HASH_RING_TARGETS_SOURCE" not in err.getvalue()
        with (
            override_settings(HASH_RING_TARGETS_SOURCE="tests.nosuch.bizs"),
            pytest.raises(CommandError, match=r"HASH_RING_TARGETS_SOURCE='tests.nosuch.bizs': ModuleNotFoundError"),
        ):
            call_command("hash_ring", stdout=StringIO(), stderr=StringIO())
    finally:
        for reg in access:
            reg.unregister()


def test_beats_on_one_host_register_their_share_of_its_businesses(
    ring: dict[str, Any], consul_agent: ConsulAgent
) -> None:
    first, second = (
        LeaderGate(registration=registration("10.0.0.3", 1)),
        LeaderGate(registration=registration("10.0.0.3", 2)),
    )
    for gate in (first, second, first):  # the first rewrites its targets once it sees the second instance
        assert gate.allows()  # one host: it is the leader's, whichever instance asks
    client = consul_agent.client()
    prefix = first.registration.prefix
    assert json.loads(client.kv.get(f"{prefix}/10.0.0.3/1")[1]["Value"]) == [2, 100]
    assert json.loads(client.kv.get(f"{prefix}/10.0.0.3/2")[1]["Value"]) == [3, 5000]
    first.close()
    second.close()


def test_hash_ring_names_an_unreachable_agent(ring: dict[str, Any]) -> None:
    unreachable = override_settings(CONSUL_CLIENT_HOST="127.0.0.1", CONSUL_CLIENT_PORT=1)
    with unreachable, pytest.raises(CommandError, match=r"Consul agent at http://127\.0\.0\.1:1 is unavailable"):
        hash_ring()


def test_a_consul_outage_leaves_the_choice_to_the_redis_lock(
    ring: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The gate is advice: while Consul cannot be read it lets every beat through, the ring's leader and the others
    alike, however long the outage lasts (the lock decides); once Consul answers, its answer counts again."""
    leader = LeaderGate(registration=registration("10.0.0.3", 33))
    other = LeaderGate(registration=registration("10.0.0.1", 11))
    assert (leader.allows(), other.allows(), leader.allows()) == (True, False, True)
    clients = {gate: gate.registration.client for gate in (leader, other)}
    for gate in (leader, other):  # point the clients at nothing
        gate.registration.client = consul.Consul(host="127.0.0.1", port=1, connections_timeout=1)
    with pytest.raises(ConsulUnavailableError):
        leader.registration.registry()
    with caplog.at_level(logging.INFO, logger="alarm_backends.management.base.leader"):
        assert [gate.allows() for gate in (leader, other, leader, other)] == [True] * 4
        # Consul back (the sessions may have expired meanwhile): both register again, the ring decides again.
        for gate, client in clients.items():
            gate.registration.client = client
        assert (leader.allows(), other.allows(), leader.allows()) == (True, False, True)
    outages = [r.message for r in caplog.records if "the Redis lock alone decides" in r.message]
    assert len(outages) == 2  # once per gate and outage, not once per tick
    assert sum("Consul answers again" in r.message for r in caplog.records) == 2
    leader.close()
    other.close()


# --- real beat processes -------------------------------------------------------------------------------------


def start_beat(name: str, host: str, queue: str, tmp: Path, agent: ConsulAgent, ring: dict[str, Any]) -> Beat:
    return Beat(
        name,
        queue,
        tmp,
        LOCK_TIMEOUT,
        BEAT_TEST_LEADER_GATE="1",
        CONSUL_HOST=agent.host,
        CONSUL_PORT=str(agent.port),
        BK_MONITOR_HOST_ADDR=host,
        BK_MONITOR_APP_CODE=ring["APP_CODE"],
        BKAPP_SETTINGS_CONSUL_SESSION_TTL=str(TTL),
        BKAPP_SETTINGS_BKMONITOR_WORKER_INCLUDE_LIST=json.dumps(INCLUDE),
        **({"CONSUL_HTTP_TOKEN": agent.token} if agent.token else {}),
    )


@dataclass(frozen=True)
class GatedBeats:
    leader: Beat
    follower: Beat
    queue: str
    client: consul.Consul  # a client of the agent they register with
    app_code: str  # their ring's key prefix (without the trailing "_")


@pytest.fixture
def gated_beats(
    redis_dbs: None, ring: dict[str, Any], consul_agent: ConsulAgent, tmp_path: Path
) -> Iterator[GatedBeats]:
    """Beats on "hosts" 10.0.0.1 and 10.0.0.3; with both registered, .3 owns business 2 and leads."""
    queue = f"bkm-test-gated-{uuid.uuid4().hex[:8]}"
    # The leader first: a follower alone on the ring would lead until the leader's registration shows up.
    leader = start_beat("host3", "10.0.0.3", queue, tmp_path, consul_agent, ring)
    follower: Beat | None = None
    try:
        wait_for(lambda: leader.logged("acquired the lock"), 30, "the ring leader to take the lock")
        follower = start_beat("host1", "10.0.0.1", queue, tmp_path, consul_agent, ring)
        wait_for(lambda: hash_ring().count("host: ") == 2, 30, "both beats to register", ignore=(CommandError,))
        wait_for(lambda: follower and follower.logged("is not the leader"), 10, "the follower's first check")
        yield GatedBeats(leader, follower, queue, consul_agent.client(), ring["APP_CODE"])
    finally:
        leader.stop()
        if follower is not None:
            follower.stop()
        broker().delete(queue)


def origins(queue: str, task_id: str) -> list[str]:
    """Who published each copy of ``task_id``, oldest first: Celery's ``gen<pid>@<host>`` without the host."""
    return [m["headers"]["origin"].split("@")[0] + "@" for m in published(queue) if m["headers"]["id"] == task_id]


@pytest.mark.slow
def test_only_the_ring_leader_dispatches_and_a_killed_one_leaves_after_its_ttl(gated_beats: GatedBeats) -> None:
    leader, follower, queue, client = gated_beats.leader, gated_beats.follower, gated_beats.queue, gated_beats.client
    prefix = f"{gated_beats.app_code}_"

    # Each registration holds the businesses its host owns (the leader rewrites its own on its next tick).
    def values() -> dict[str, Any]:
        _, entries = client.kv.get(prefix, recurse=True)
        # Every value under the prefix is JSON (the original's tools may read them all); the ring's registrations:
        values = {e["Key"]: json.loads(e["Value"]) for e in entries or []}
        return {key.split("/")[2]: value for key, value in values.items() if key.split("/")[1] == "celerybeat"}

    expected = {"10.0.0.1": [100], "10.0.0.3": [2, 3, 5000]}
    wait_for(lambda: values() == expected, 5, f"registered targets {expected}")
    # Several TTLs: both stay registered (renewed at TTL/2), only the leader dispatches. The window is what is
    # measured; within it the ring is checked after every change to its keys (an expired session deletes its key),
    # each reported by a blocking query on their prefix, instead of sampled now and then.
    deadline = time.monotonic() + 3 * TTL
    index, _ = client.kv.get(prefix, recurse=True)
    while (left := deadline - time.monotonic()) > 0:
        assert hash_ring() == BOTH
        index, _ = client.kv.get(prefix, recurse=True, index=index, wait=f"{max(int(left * 1000), 1)}ms")
    assert hash_ring() == BOTH
    assert "Sent " in leader.log()
    assert not follower.logged("acquired the lock") and "Sent " not in follower.log()
    assert follower.logged("is not the leader (10.0.0.3 owns business 2")
    killed_at = time.monotonic()
    leader.signal(signal.SIGKILL)  # no unregister: only the session's expiry removes it
    wait_for(lambda: hash_ring() == ONLY_1, EXPIRY + 5, "the key to expire")
    expired_after = time.monotonic() - killed_at
    assert expired_after >= TTL - 1  # not before the TTL
    wait_for(lambda: follower.logged("acquired the lock"), 5, "the survivor to lead")
    assert follower.logged("is the leader (this host owns business 2")
    wait_for(lambda: "Sent " in follower.log(), 10, "the survivor to dispatch")
    assert duplicates(queue) == []


@pytest.mark.slow
def test_a_leader_whose_session_ends_hands_over_and_takes_back(gated_beats: GatedBeats) -> None:
    leader, follower, queue, client = gated_beats.leader, gated_beats.follower, gated_beats.queue, gated_beats.client
    name = f"{gated_beats.app_code}_community_development_default/celerybeat/10.0.0.3/"
    sessions = [s for s in client.session.list()[1] if str(s.get("Name")).startswith(name)]
    assert len(sessions) == 1
    mark = len(follower.log())
    leader.signal(signal.SIGSTOP)  # it can neither renew nor register again while its session ends
    client.session.destroy(sessions[0]["ID"])
    # The follower is the ring's leader at its next tick and gets the lock once the paused leader's lease ends.
    # Bound: the paused leader's lease (LOCK_TIMEOUT) + one standby tick + the follower's Consul read, with slack.
    wait_for(lambda: "acquired the lock" in follower.log()[mark:], LOCK_TIMEOUT + 6, "the follower to lead")
    wait_for(lambda: "Sent " in follower.log()[mark:], 10, "the follower to dispatch")
    resumed = len(leader.log())
    leader.signal(signal.SIGCONT)
    # Back, it finds its key gone, registers again at once, owns business 2 again: the follower gives the lock up.
    wait_for(lambda: "released the lock" in follower.log()[mark:], 15, "the follower to step down")
    wait_for(lambda: "acquired the lock" in leader.log()[resumed:], LOCK_TIMEOUT + 15, "the old leader to lead")
    # It leads again once it published: whatever each of them could send twice has gone out by then.
    relead = len(leader.log())
    wait_for(lambda: "Sent " in leader.log()[relead:], 10, "the old leader to dispatch again")
    # The lease is checked before every message, so a leader paused between that check and the publish sends that
    # one message when it runs again (the workers drop the second copy by its id); nothing else may go out twice.
    repeated = duplicates(queue)
    late = [task_id for task_id in repeated if origins(queue, task_id)[-1] == f"gen{leader.proc.pid}@"]
    assert len(late) <= 1 and repeated == late, {task_id: origins(queue, task_id) for task_id in repeated}


def test_hosts_announce_the_ring_they_run_and_auto_follows_the_fleet(
    ring: dict[str, Any], consul_agent: ConsulAgent
) -> None:
    """A host of this platform announces its ring beside its registration (held by the same session); a host of
    the original does not, and while it is registered every host keeps the original's owners."""
    platform = registration("10.0.0.1", 1)
    platform.register([2])
    client = consul_agent.client()
    base = f"{ring['APP_CODE']}_community_development_default"
    assert platform.announcement_path == f"{base}/~ring/celerybeat/10.0.0.1/1"
    _, entry = client.kv.get(platform.announcement_path)
    assert json.loads(entry["Value"]) == {"ring": "separate-labels"} and entry["Session"] == platform.session_id
    original = registration("10.0.0.12", 2)
    try:
        with override_settings(HASH_RING_SEPARATE_LABELS=False):  # announces nothing, as the original's hosts
            original.register([])
        registry = platform.registry()
        assert (registry.hosts, registry.announced) == (["10.0.0.1", "10.0.0.12"], frozenset({"10.0.0.1"}))
        err = StringIO()
        call_command("hash_ring", "--type", "celerybeat", stdout=StringIO(), stderr=err)
        assert err.getvalue().startswith("ring: the original's (auto: 10.0.0.12 announces nothing (the original?))")
    finally:
        original.unregister()
    err = StringIO()
    call_command("hash_ring", "--type", "celerybeat", stdout=StringIO(), stderr=err)
    assert err.getvalue().startswith("ring: labels separated (auto: every registered host announces")
    # The announcement goes with the session, like the registration.
    platform.unregister()
    assert client.kv.get(platform.announcement_path)[1] is None


@pytest.mark.parametrize(("separate", "kind"), [(False, "ring: the original's"), (True, "ring: labels separated")])
def test_hash_ring_says_which_ring_is_in_force(ring: dict[str, Any], separate: bool, kind: str) -> None:
    """On stderr: stdout keeps the original's format."""
    one = registration("10.0.0.1", 1)
    one.register([2])
    out, err = StringIO(), StringIO()
    try:
        with override_settings(HASH_RING_SEPARATE_LABELS=separate):
            call_command("hash_ring", "--type", "celerybeat", stdout=out, stderr=err)
    finally:
        one.unregister()
    assert err.getvalue().startswith(kind) and out.getvalue() == ONLY_1
