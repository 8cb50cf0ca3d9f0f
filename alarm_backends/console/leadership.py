"""What the leadership page shows: the lease (who holds the lock, for how long, since when, failovers), the beats
standing by, and the Consul ring (its hosts, the host it advises to lead, and the owner of a business id).

The lock is the one fence; the ring only advises (``management.base.leader``), so the two are read and shown apart,
and a part that cannot be read (the store, Consul) is named while the other still shows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import redis
from django.conf import settings

from alarm_backends.core.consul_client import ConsulUnavailableError
from alarm_backends.core.host import get_host_addr
from alarm_backends.management.base.dispatch import ring_for, ring_kind, separates_labels
from alarm_backends.management.base.leader import LEADER_COMMAND, ring_leader
from alarm_backends.management.base.service_discovery import ConsulRegistration
from alarm_backends.management.commands.hash_ring import container_mode_header, single_node_header
from alarm_backends.management.schedule import view
from alarm_backends.management.schedule.reader import Schedule, holder_text
from patches.redbeat.controls import Lease


@dataclass(frozen=True)
class Beat:
    """A beat seen at the lock: leading, standing by, or gone quiet (not seen within the lock's timeout, so it
    could not take over in time: stopped without a clean stop, paused or cut off)."""

    who: str
    role: str
    seen_ago: float


@dataclass
class LeaseView:
    leader: str  # the schedule page's leader line
    holder: str  # "host h, pid p", or "" when no beat holds the lock
    ttl: float | None
    since: str = ""
    held_for: str = ""
    terms: int = 0
    failovers: int = 0
    last_failover: str = ""
    previous: str = ""
    released: bool = False  # the holder gave the lock up cleanly (a hand-over follows, not a failover)
    beats: list[Beat] = field(default_factory=list)


@dataclass
class RingView:
    """The Consul ring of the beats (``hash_ring --type celerybeat``), or why there is none."""

    mode: str  # one line: how the leader is chosen in this deployment
    hosts: list[tuple[str, int]] = field(default_factory=list)  # registered host, instances on it
    advised: str = ""  # the host the ring advises to lead (owner of DEFAULT_BK_BIZ_ID)
    biz: int | None = None
    owner: str = ""  # the owner of ``biz``
    problem: str = ""


def lease_view(schedule: Schedule, lease: Lease, tz: dt.tzinfo) -> LeaseView:
    record = lease.record
    seen = LeaseView(
        leader=schedule.leader_line(lease.ttl, lease.holder),
        holder=holder_text(lease.holder) if lease.holder else "",
        ttl=lease.ttl,
        terms=int(record.get("terms") or 0),
        failovers=int(record.get("failovers") or 0),
        previous=holder_text(record["previous"]) if record.get("previous") else "",
        released=record.get("released") == "1",
    )
    # The record's token is the holder's when the lock is held by a beat that wrote it; "since" is then its term.
    if lease.holder and record.get("token") == lease.holder and record.get("since"):
        since = float(record["since"])
        seen.since, seen.held_for = view.stamp(since, tz), view.duration(max(lease.now - since, 0))
    if record.get("last_failover"):
        seen.last_failover = view.stamp(float(record["last_failover"]), tz)
    quiet_after = schedule.conf.lock_timeout
    for token, stamp in sorted(lease.beats, key=lambda beat: -beat[1]):
        ago = max(lease.now - stamp, 0.0)
        role = "leader" if token == lease.holder else "standby" if ago <= quiet_after else "quiet"
        seen.beats.append(Beat(holder_text(token), role, ago))
    return seen


def read_lease(schedule: Schedule, tz: dt.tzinfo) -> tuple[LeaseView | None, str]:
    try:
        return lease_view(schedule, schedule.controls.lease(), tz), ""
    except redis.RedisError as exc:
        return None, f"the schedule store ({schedule.where}) cannot be read: {exc}"


def parse_biz(raw: str) -> tuple[int | None, str]:
    """The business id asked for (``?biz=``), or why it is refused."""
    raw = raw.strip()
    if not raw:
        return None, ""
    if not raw.isdigit():
        return None, f"business id {raw!r}: a whole number is needed"
    return int(raw), ""


def read_ring(biz: int | None) -> RingView:
    """The beats' ring as ``hash_ring --type celerybeat`` reads it, following the deployment mode."""
    try:
        me = get_host_addr()
    except ValueError as exc:  # a bad HOST_ADDR: named, the lease still shows
        return RingView(mode="", problem=str(exc))
    if not settings.CONSUL_ENABLED:
        owner = me if biz is not None else ""
        return RingView(single_node_header(me, bool(settings.IS_CONTAINER_MODE)), [(me, 1)], me, biz, owner)
    try:
        registration = ConsulRegistration(LEADER_COMMAND, host_addr=me)
    except ValueError as exc:  # a bad CONSUL_SESSION_TTL
        return RingView(mode="", problem=str(exc))
    mode = container_mode_header(registration) if settings.IS_CONTAINER_MODE else ""
    try:
        registry = registration.registry()
    except ConsulUnavailableError as exc:
        return RingView(mode, biz=biz, problem=f"the ring cannot be read: {exc}")
    mode = mode or ring_kind(registry)
    hosts = [(host, len(pids)) for host, pids in registry.instances.items()]
    if not hosts:
        empty = f"no beat is registered under {registration.prefix} (Consul at {registration.address})"
        return RingView(mode, biz=biz, problem="" if settings.IS_CONTAINER_MODE else empty)
    owner = ring_for(registry.hosts, separates_labels(registry)).get_node(biz) if biz is not None else ""
    return RingView(mode, hosts, ring_leader(registry) or "", biz, owner)
