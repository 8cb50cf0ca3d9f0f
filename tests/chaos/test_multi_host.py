"""Scenario 8: three hosts; the ring leader is cut off the network and comes back.

Three network namespaces on a private bridge (tests/chaos/netns.py), each running a beat and a worker of
``tests.chaos.chaosapp`` under its own supervisord, the beats gated by the platform's Consul ring-leader check
(``CHAOS_LEADER_GATE=1``: ``alarm_backends.management.base.leader.LeaderGate``) against a fake Consul agent; the
schedule store, the broker, the events Redis and the agent listen on the bridge address. 20 entries due every 5 s, a
3 s lock, a 10 s session TTL (Consul's minimum).

1. All three register; the owner of ``DEFAULT_BK_BIZ_ID`` on the ring of the three addresses is the only beat that
   dispatches.
2. Its switch port goes down — 8: between two dispatches, the workers idle; 8b: half-way through publishing a slot
   (the beat is held still at its 11th message while the cut lands). Its session ends twice the TTL after its last
   renewal; the ring of the other two then names the successor, whose gate opens; it takes the lock (the cut-off
   leader could not renew it) and dispatches, the uncommitted slot of 8b included.
3. The port comes back up: the old leader registers again and owns business 2 again; the successor's gate turns it
   away, it gives the lock up, and the old leader takes it and dispatches.

8c: the Consul agent stops for three session TTLs and comes back empty. The gate is advice and the Redis lock the
fence: while Consul cannot be read the gates have no opinion, the leader keeps the lock and publishes every slot, the
others keep trying the lock in vain; once Consul is back all three register again and the leader stays the leader.

The cut-off leader is told nothing. Its gate, unable to reach Consul, has no opinion (the lock decides), but its tick
hangs in its next network call. 8: a store call (socket timeout, retried), which fails or
meets the successor's lock in a fenced script once the link is back. 8b: the publish of its 11th message to the
Redis broker, whose socket wait is bounded by the lease's renew interval (``patches.redbeat.publisher.open_producer``):
it times out, the chunk is left uncommitted, and the successor publishes the slot again. (Before that bound this
publish waited for the link to come back, about 15 minutes at worst, and then sent its stale message;
``HungPublishError`` guards against that.) The cut may also catch the host's worker with a message it ran but could
not acknowledge: the broker hands it out again after the visibility timeout, and the dedupe drops it.

Runs are counted by the harness (``Scenario.tally``): every ``<entry>@<slot>`` from the leader's first whole slot
after all three registered to the end must run exactly once. The slots due while no beat may lead (the 17-20 s the
cut-off host stays registered) are served late by the successor under the missed-run policy ``all``
(``CHAOS_MISSED_RUN``), which publishes each under its own id so each can be checked; under the platform's default
``once`` they would collapse, by design, into one late run per entry. failover_s here is the cut → the successor's
first publish; the note gives when the lock changed hands.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from django.conf import settings

from alarm_backends.management.base.leader import ring_leader
from alarm_backends.management.base.registry import Registry
from tests.chaos.events import DELIVERED, FAULT, PUBLISHED
from tests.chaos.harness import EDGE, Event, Row
from tests.chaos.netns import BEAT, Cluster, NetnsUnavailableError, SupervisedHost, cluster
from tests.gate import skip_or_fail
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

NAME = "8 three hosts, leader cut off"
NAME_MID = "8b three hosts, leader cut off mid-publish"
HOSTS = 3
ENTRIES = 20
LOCK_TIMEOUT = 3.0
TTL = 10  # Consul's minimum session TTL
EXPIRY = 2 * TTL  # Consul (and the fake) drop a session this long after its last renewal
# Cut → the successor dispatching: the session's expiry, a standby tick and a Consul read (CONSUL_TIMEOUT at most),
# and what a loaded 2-core machine adds to the wake-ups (the exact figure is printed).
FAILOVER_BOUND = EXPIRY + 1 + float(settings.CONSUL_TIMEOUT) + 1.5
# The cut-off leader is held still before this message of a slot, for PAUSE seconds: the cut lands meanwhile.
MID_PUBLISH, PAUSE = ENTRIES // 2 + 1, 2.0
HOST_ENV = {"BKAPP_SETTINGS_CONSUL_SESSION_TTL": str(TTL), "CHAOS_MISSED_RUN": "all"}
# What tests/chaos/netns.py needs from the machine: it makes namespaces, a bridge and veth pairs in the root one.
NEEDS = "iproute2's `ip`, and root (CAP_NET_ADMIN and CAP_SYS_ADMIN) with the kernel's bridge and veth support"


def unavailable(reason: str) -> NoReturn:
    """No namespaces here: skip, or fail under BKM_REQUIRE_SERVICES=1, where the scenario must run."""
    skip_or_fail(f"network namespaces cannot be made here ({NEEDS}): {reason}")


@pytest.fixture
def hosts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """The cluster of a scenario named by the test's parameter."""
    with contextlib.ExitStack() as stack:
        try:
            made = stack.enter_context(
                cluster(request.param, tmp_path, HOSTS, HOST_ENV, entries=ENTRIES, lock_timeout=LOCK_TIMEOUT)
            )
        except NetnsUnavailableError as exc:
            unavailable(str(exc))
        yield made


def ring_leader_of(addresses: list[str]) -> str:
    leader = ring_leader(Registry({address: ["1"] for address in addresses}))
    assert leader is not None
    return leader


def published(hosts: Cluster, since: float, until: float = float("inf")) -> list[tuple[str, Event]]:
    """(host address, event) of every message a beat published in [since, until)."""
    return [(hosts.beat_of(e.pid), e) for e in hosts.scenario.read(PUBLISHED) if since <= e.ts < until]


def publishers(hosts: Cluster, since: float, until: float = float("inf")) -> set[str]:
    return {address for address, _ in published(hosts, since, until)}


def whole_slot(hosts: Cluster, host: SupervisedHost, after: float, timeout: float) -> tuple[int, float]:
    """Until ``host``'s beat published every entry of one grid slot after ``after``; -> (slot, when it began)."""
    interval = int(hosts.scenario.interval)

    def done() -> tuple[int, float] | None:
        slots: dict[int, list[float]] = {}
        for address, event in published(hosts, after):
            # Slots due after ``after``, on the grid (not a new schedule's first runs, not slots served late).
            if address == host.net.address and event.epoch % interval == 0 and event.epoch > after:
                slots.setdefault(event.epoch, []).append(event.ts)
        whole = [(slot, min(times)) for slot, times in slots.items() if len(times) >= ENTRIES]
        return min(whole) if whole else None

    found: tuple[int, float] = wait_for(done, timeout, f"{host.net.address} to publish a whole slot")
    return found


def logged_after(host: SupervisedHost, text: str, mark: int, timeout: float) -> float:
    """Until ``host``'s beat logs ``text`` past offset ``mark``; -> when it was seen."""
    return float(wait_for(lambda: text in host.log(BEAT)[mark:] and time.time(), timeout,
                          f"{host.net.address} to log {text!r}"))  # fmt: skip


def registered_change(hosts: Cluster, address: str, present: bool, timeout: float) -> float:
    """Until ``address`` is (``present``) or is no longer registered; -> when it was seen."""
    return float(wait_for(lambda: (address in hosts.registered()) == present and time.time(), timeout,
                          f"{address} to be {'registered' if present else 'unregistered'}"))  # fmt: skip


def finish(hosts: Cluster) -> float:
    """Run on across one more slot, stop every beat (through its supervisord), let the workers drain; -> when the
    window closed."""
    scenario = hosts.scenario
    scenario.sleep_until(scenario.next_slot(time.time()) + EDGE + 0.5)
    closed = time.time()
    for host in hosts.hosts:
        host.stop_program(BEAT)
    scenario.drain()
    return closed


def stood_down(host: SupervisedHost, cut: int, restored: int) -> str:
    """When and why ``host``'s beat first stepped down after the cut (its log offsets at the cut and at the
    restore: the log is unbuffered, so a line past ``restored`` was written after the link came back)."""
    log = host.log(BEAT)
    at = log.find("beat: lost leadership (", cut)
    if at < 0:
        return "never stood down"
    why = log[at:].partition("(")[2].partition(")")[0]
    return f"stood down {'after the link came back' if at >= restored else 'while cut off'} ({why})"


class HungPublishError(AssertionError):
    """The cut-off leader's publish to the Redis broker never returned while it was cut off."""


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("hosts", "mid_publish"),
    [
        pytest.param(NAME, False, id="between-dispatches"),
        pytest.param(NAME_MID, True, id="mid-publish"),
    ],
    indirect=["hosts"],
)  # fmt: skip
def test_the_leader_host_is_cut_off_and_comes_back(
    hosts: Cluster, report: Callable[[Row], None], mid_publish: bool
) -> None:
    scenario = hosts.scenario
    addresses = [host.net.address for host in hosts.hosts]
    leader = hosts.host(ring_leader_of(addresses))
    successor = hosts.host(ring_leader_of([a for a in addresses if a != leader.net.address]))
    for host in hosts.hosts:
        host.wait_running(60)
    wait_for(lambda: hosts.registered() == set(addresses), 60, "all three beats to register")

    # 1. The ring leader dispatches, alone.
    _, start = whole_slot(hosts, leader, time.time(), 40)
    where = ""
    if mid_publish:
        # Held still half-way through a slot: the cut lands before its next message.
        leader.arm("PAUSE", MID_PUBLISH, PAUSE)
        fault = scenario.wait_events(FAULT, lambda e: hosts.beat_of(e.pid) == leader.net.address, 1, 20)[0]
        where = f" with {fault.fields['published_before']} messages of slot {scenario.next_slot(fault.ts - 5)} out"
    else:
        scenario.wait_committed(scenario.next_slot(time.time()), 15)
        scenario.drain()  # between two dispatches: the workers idle, nothing in flight

    # 2. Cut off: its session expires, the successor's gate opens, it takes the lock and dispatches.
    token, marks = scenario.lock_token(), {h.net.name: len(h.log(BEAT)) for h in hosts.hosts}
    cut_at = time.time()
    hosts.network.cut(leader.net)
    expired_at = registered_change(hosts, leader.net.address, False, EXPIRY + 10)
    taken_at = scenario.wait_lock_change(token, 15)
    members_cut = hosts.registered()
    whole_slot(hosts, successor, taken_at, 25)  # and a slot due after that, on time

    # 3. Back: it registers again, owns business 2 again, the successor gives the lock up and it leads.
    restored_at, mark = time.time(), len(leader.log(BEAT))
    hosts.network.restore(leader.net)
    back_at = registered_change(hosts, leader.net.address, True, 60)
    leading_at = logged_after(leader, "acquired the lock", marks[leader.net.name], 30)
    whole_slot(hosts, leader, leading_at, 20)
    members_back = hosts.registered()
    closed = finish(hosts)

    tally = scenario.tally(start, closed)
    events = published(hosts, start)
    by_successor = [e for address, e in events if address == successor.net.address and e.ts > cut_at]
    failover = min(e.ts for e in by_successor) - cut_at
    late = {e.epoch for e in by_successor if e.epoch < taken_at - 1}  # due while no beat could lead
    while_cut = [e.id for address, e in events if address == leader.net.address and cut_at <= e.ts < restored_at]
    # What the old leader published after the cut that had gone out already: a stale message, however delayed.
    stale, seen = [], set()
    for address, event in events:
        if address == leader.net.address and event.ts > cut_at and event.id in seen:
            stale.append(event.id)
        seen.add(event.id)
    twice = [i for i, n in collections.Counter(e.id for _, e in events).items() if n > 1]
    deliveries = [e for e in scenario.read(DELIVERED) if e.ts >= start]
    dropped = len(deliveries) - len({e.id for e in deliveries})
    redelivered = sum(1 for e in deliveries if e.fields.get("redelivered"))
    returned = "beat: publishing failed" in leader.log(BEAT)[marks[leader.net.name] : mark]
    note = (
        f"{leader.net.address} cut off{where}: unregistered after {expired_at - cut_at:.1f}s; "
        f"{successor.net.address} took the lock after {taken_at - cut_at:.1f}s and served the {len(late)} slot(s) due "
        f"meanwhile late; the cut-off beat published {len(while_cut)} while cut off, {len(stale)} stale after, "
        f"{stood_down(leader, marks[leader.net.name], mark)}; back: registered {back_at - restored_at:.1f}s, leading "
        f"{leading_at - restored_at:.1f}s after the link; {len(twice)} slot(s) published twice, "
        f"{dropped} second delivery(ies) dropped by dedupe ({redelivered} redelivered by the broker)"
    )
    report(scenario.row(tally, failover, note))

    assert publishers(hosts, start, cut_at) == {leader.net.address}
    assert publishers(hosts, cut_at, restored_at) == {successor.net.address}
    assert publishers(hosts, leading_at + 1) == {leader.net.address}
    assert members_cut == set(addresses) - {leader.net.address}, members_cut
    assert members_back == set(addresses), members_back
    assert "released the lock" in successor.log(BEAT)[marks[successor.net.name] :], "the successor kept the lock"
    assert not while_cut, f"the cut-off leader published {while_cut[:5]}"
    scenario.assert_every_run_once(tally, start)
    assert failover <= FAILOVER_BOUND, failover
    if mid_publish and not returned:
        raise HungPublishError(
            f"the cut-off leader's publish did not return in the {restored_at - cut_at:.0f}s it was cut off; it went "
            f"out {len(stale)} stale message(s) later, when the link came back"
        )


NAME_CONSUL = "8c three hosts, Consul down 3 x TTL"
OUTAGE = 3 * TTL


@pytest.mark.timeout(240)
@pytest.mark.parametrize("hosts", [NAME_CONSUL], indirect=True)
def test_consul_goes_down_and_scheduling_goes_on(hosts: Cluster, report: Callable[[Row], None]) -> None:
    """The Consul agent stops for three session TTLs (every registration expires), then comes back empty. The gate is
    advice: while Consul cannot be read it has no opinion, the Redis lock decides, and the leader keeps leading;
    once Consul is back every beat registers again and the leader stays the leader. Every run exactly once."""
    scenario = hosts.scenario
    addresses = [host.net.address for host in hosts.hosts]
    leader = hosts.host(ring_leader_of(addresses))
    for host in hosts.hosts:
        host.wait_running(60)
    wait_for(lambda: hosts.registered() == set(addresses), 60, "all three beats to register")
    _, start = whole_slot(hosts, leader, time.time(), 40)
    token, marks = scenario.lock_token(), {h.net.name: len(h.log(BEAT)) for h in hosts.hosts}

    down_at = time.time()
    hosts.consul.close()
    scenario.sleep_until(down_at + OUTAGE)
    during = publishers(hosts, down_at, time.time())
    token_during = scenario.lock_token()
    hosts.consul.restart()
    back_at = time.time()
    wait_for(lambda: hosts.registered() == set(addresses), 30, "all three beats to register again")
    registered_at = time.time()
    whole_slot(hosts, leader, registered_at, 20)
    closed = finish(hosts)

    tally = scenario.tally(start, closed)
    events = published(hosts, start)
    twice = [i for i, n in collections.Counter(e.id for _, e in events).items() if n > 1]
    outage_logged = [h.net.address for h in hosts.hosts
                     if "the Redis lock alone decides" in h.log(BEAT)[marks[h.net.name] :]]  # fmt: skip
    note = (
        f"Consul down {back_at - down_at:.0f}s (session TTL {TTL}s): {leader.net.address} kept the lock and "
        f"published every slot meanwhile ({len(during)} publisher(s)); back: all registered again after "
        f"{registered_at - back_at:.1f}s, the same leader; {len(twice)} slot(s) published twice; "
        f"{len(outage_logged)} beat(s) logged the outage"
    )
    report(scenario.row(tally, None, note))

    assert during == {leader.net.address}, during
    assert token_during == token, "the lock changed hands during the outage"
    assert scenario.lock_token() in (token, None), "the lock changed hands after the outage"
    assert publishers(hosts, start) == {leader.net.address}
    assert sorted(outage_logged) == sorted(addresses)
    scenario.assert_every_run_once(tally, start)
