"""The entry's run lease on a real Redis (overlap/acquire.lua, renew.lua, release.lua, with dedupe's claim.lua): what
each policy decides, fencing, expiry, the buffered run's hand-off and its claim."""

from __future__ import annotations

import logging
import os

import pytest

from alarm_backends.core.storage.redis import SERVICE, get_client
from alarm_backends.service.scheduler import dedupe
from alarm_backends.service.scheduler.overlap.lease import (
    RELEASE,
    RENEW,
    Decision,
    HeldLease,
    acquire,
    buffered_key,
    lease_key,
    state,
)
from tests.integration.conftest import wait_for

ENTRY = "tests.overlap.entry"
LEASE = 30.0


def slot(n: int) -> str:
    return f"{ENTRY}@{1_795_000_000 + 60 * n}"


def take(n: int, policy: str, marker: str | None = None) -> Decision:
    """Claim slot ``n`` as a worker does, then ask for the lease under ``policy``."""
    marker = marker or f"running:m{n}"
    assert dedupe.claim(ENTRY, slot(n), 300, False, marker=marker)
    return acquire(ENTRY, slot(n), marker, policy, LEASE, dedupe.claim_key(""), dedupe.claim_ttl(300))


def renew(marker: str) -> int:
    return int(RENEW(get_client(SERVICE), [lease_key(ENTRY)], [marker, int(LEASE * 1000)]))


def release(marker: str) -> list[object]:
    keys, args = [lease_key(ENTRY), buffered_key(ENTRY)], [marker, int(LEASE * 1000), dedupe.claim_key("")]
    return list(RELEASE(get_client(SERVICE), keys, args))


def claim_of(n: int) -> str | None:
    value = get_client(SERVICE).get(dedupe.claim_key(slot(n)))
    return None if value is None else str(value)


@pytest.mark.redis
def test_skip_and_fencing(redis_dbs: None) -> None:
    first = take(0, "skip")
    assert first == Decision("acquired", fence=1)
    # A retry of the same call (its reply lost) is the same hold.
    assert acquire(ENTRY, slot(0), "running:m0", "skip", LEASE, dedupe.claim_key(""), 60) == first
    assert take(1, "skip") == Decision("skipped", holder=slot(0))
    assert claim_of(1) == "skipped"  # a redelivery of it is dropped too
    assert not dedupe.claim(ENTRY, slot(1), 300, True, marker="running:again")
    assert (renew("running:m0"), renew("running:m1")) == (1, 0)
    assert release("running:m1") == [0, ""]  # not its lease: untouched
    assert release("running:m0") == [1, ""]
    assert take(2, "skip") == Decision("acquired", fence=2)  # every holder's fence above every one before
    assert state(ENTRY) | {"since": 0} == {"running": slot(2), "worker": state(ENTRY)["worker"], "fence": 2,
                                           "since": 0, "skipped": 1, "buffered": 0, "replaced": 0}  # fmt: skip


@pytest.mark.redis
def test_a_lease_not_renewed_expires_and_a_redelivery_takes_its_own_over(redis_dbs: None) -> None:
    assert take(0, "skip").outcome == "acquired"
    # Its slot redelivered (a long job past the broker's timeout, or its worker died): the claim lets it take the
    # slot over, but the lease is still held, maybe by a live run: not run beside it, retried when the lease ends.
    assert dedupe.claim(ENTRY, slot(0), 300, True, marker="running:new")
    held = acquire(ENTRY, slot(0), "running:new", "skip", LEASE, dedupe.claim_key(""), 60)
    assert (held.outcome, held.holder) == ("held", slot(0)) and 0 < held.retry <= LEASE
    # Not renewed (the worker died), the lease runs out; the retry then takes the slot and the lease over.
    get_client(SERVICE).pexpire(lease_key(ENTRY), 50)
    wait_for(lambda: not get_client(SERVICE).exists(lease_key(ENTRY)), 5, "the lease to expire")
    assert dedupe.claim(ENTRY, slot(0), 300, True, marker="running:retry")
    assert acquire(ENTRY, slot(0), "running:retry", "skip", LEASE, dedupe.claim_key(""), 60).fence == 2
    assert renew("running:m0") == 0  # the dead run's renewals are fenced off
    assert take(1, "skip").outcome == "skipped"


@pytest.mark.redis
def test_buffer_one_keeps_one_waiting_and_hands_over(redis_dbs: None) -> None:
    assert take(0, "buffer_one").outcome == "acquired"
    assert take(1, "buffer_one") == Decision("buffered", holder=slot(0))
    assert claim_of(1) == "buffered"
    assert take(2, "buffer_one") == Decision("skipped", holder=slot(0), waiting=slot(1))
    # A reminder of the buffered run while the first still runs: its claim is taken back, and it waits again.
    assert dedupe.claim(ENTRY, slot(1), 300, False, marker="running:r1", buffered=True)
    assert acquire(ENTRY, slot(1), "running:r1", "buffer_one", LEASE, dedupe.claim_key(""), 60).outcome == "buffered"
    assert claim_of(1) == "buffered"
    # The first ends: its release hands the lease to the waiting slot and names it (sent again: named again).
    assert release("running:m0") == [1, slot(1)]
    assert release("running:m0") == [0, slot(1)]
    # A newer slot coming before the buffered one's start finds the entry taken: the buffered run goes first.
    assert take(3, "buffer_one") == Decision("skipped", holder=slot(1), waiting=slot(1))
    assert dedupe.claim(ENTRY, slot(1), 300, False, marker="running:h1", buffered=True)
    assert acquire(ENTRY, slot(1), "running:h1", "buffer_one", LEASE, dedupe.claim_key(""), 60).outcome == "acquired"
    assert not get_client(SERVICE).exists(buffered_key(ENTRY))
    # A second start of it (the reminder, late) is dropped quietly: not a duplicate delivery of the schedule.
    dropped = dedupe.DUPLICATES_DROPPED.labels(task_name=ENTRY)._value.get()
    assert not dedupe.claim(ENTRY, slot(1), 300, False, marker="running:late", buffered=True, quiet=True)
    assert dedupe.DUPLICATES_DROPPED.labels(task_name=ENTRY)._value.get() == dropped
    assert state(ENTRY)["buffered"] == 1 and state(ENTRY)["skipped"] == 2
    # A buffered slot that no longer waits (its claim says otherwise) is not handed over: the buffer is cleared.
    assert take(4, "buffer_one").outcome == "buffered" and release("running:h1") == [1, slot(4)]
    get_client(SERVICE).set(dedupe.claim_key(slot(5)), dedupe.DONE)
    get_client(SERVICE).set(buffered_key(ENTRY), slot(5))
    get_client(SERVICE).delete(lease_key(ENTRY))
    assert take(6, "buffer_one").outcome == "acquired" and release("running:m6") == [1, ""]
    assert not get_client(SERVICE).exists(buffered_key(ENTRY))


@pytest.mark.redis
def test_replace_takes_the_lease_and_marks_the_old_slot(redis_dbs: None) -> None:
    assert take(0, "replace").outcome == "acquired"
    replaced = take(1, "replace")
    assert (replaced.outcome, replaced.holder, replaced.fence) == ("replaced", slot(0), 2)
    assert replaced.holder_worker.endswith(f":{os.getpid()}")
    assert claim_of(0) == "replaced"  # the terminated run's redelivery is dropped: it cannot come back
    assert not dedupe.claim(ENTRY, slot(0), 300, True, marker="running:back")
    assert renew("running:m0") == 0 and release("running:m0") == [0, ""]  # fenced off
    # This very call sent again (its reply lost): the old run is still named, so it is still stopped.
    again = acquire(ENTRY, slot(1), "running:m1", "replace", LEASE, dedupe.claim_key(""), 60)
    assert (again.outcome, again.holder, again.fence) == ("replaced", slot(0), 2)
    assert release("running:m1") == [1, ""]


@pytest.mark.redis
def test_a_held_lease_renews_itself_and_says_when_it_is_lost(
    redis_dbs: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Heard whatever logging configuration an earlier test left (a dictConfig disables the loggers it does not name).
    cron = logging.getLogger("cron")
    monkeypatch.setattr(cron, "disabled", False)
    monkeypatch.setattr(cron, "propagate", True)
    caplog.set_level(logging.ERROR, logger="cron")
    decision = take(0, "skip")
    client = get_client(SERVICE)
    client.pexpire(lease_key(ENTRY), 600)  # as taken with a lease of 0.6 s
    held = HeldLease(ENTRY, slot(0), "running:m0", 0.6, decision.fence, dedupe.claim_key(""))  # renewed every 0.2 s

    seen = {"last": int(client.pttl(lease_key(ENTRY))), "renewals": 0}

    def renewed_three_times() -> bool:  # its time to live went back up between two looks, three times
        ttl = int(client.pttl(lease_key(ENTRY)))
        seen["renewals"] += ttl > seen["last"]
        seen["last"] = ttl
        return seen["renewals"] >= 3

    wait_for(renewed_three_times, 5, "three renewals")
    assert client.hget(lease_key(ENTRY), "marker") == "running:m0"
    client.hset(lease_key(ENTRY), "marker", "running:other")  # taken by another run
    wait_for(lambda: held.lost, 5, "the lease to be found lost")
    assert "lost its run lease (fence 1)" in caplog.text
    assert held.release() == ""  # not its own any more: left alone
    assert client.hget(lease_key(ENTRY), "marker") == "running:other"
