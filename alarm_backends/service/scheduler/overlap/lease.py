"""The entry's run lease in the service DB: taken by acquire.lua, renewed by renew.lua, given back by release.lua."""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import redis
from prometheus_client import Counter

from alarm_backends.core.storage.redis import SERVICE, get_client, key
from alarm_backends.core.storage.script import DirectScript

logger = logging.getLogger("cron")

# What acquire.lua answers.
ACQUIRED, SKIPPED, BUFFERED, REPLACED, HELD = "acquired", "skipped", "buffered", "replaced", "held"

OVERLAP_RUNS = Counter(
    "bkmonitor_cron_overlap",
    "Scheduled runs that found their entry's previous run still running: skipped, buffered (run when it ends) or "
    "replaced (the running one terminated), by the entry's overlap policy",
    ["task_name", "policy", "outcome"],
)

_SCRIPTS = Path(__file__).parent
ACQUIRE = DirectScript((_SCRIPTS / "acquire.lua").read_text(encoding="utf-8"))
RENEW = DirectScript((_SCRIPTS / "renew.lua").read_text(encoding="utf-8"))
RELEASE = DirectScript((_SCRIPTS / "release.lua").read_text(encoding="utf-8"))


def lease_key(entry: str) -> str:
    return key("beat", "running", entry)


def buffered_key(entry: str) -> str:
    return key("beat", "buffered", entry)


def fence_key(entry: str) -> str:
    return key("beat", "fence", entry)


def totals_key(entry: str) -> str:
    return key("beat", "overlaps", entry)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Decision:
    """What ``acquire.lua`` decided for one run."""

    # ACQUIRED, REPLACED (the lease is this run's after both), SKIPPED, BUFFERED, or HELD: this very slot runs under
    # another claim (a redelivery while that run may still be alive), for ``retry`` seconds more at most.
    outcome: str
    fence: int = 0  # the lease's fence, when this run holds it
    holder: str = ""  # the slot of the run that held the lease
    holder_worker: str = ""  # where that run ran (REPLACED)
    waiting: str = ""  # the slot already buffered (SKIPPED under buffer_one)
    retry: float = 0.0  # HELD: when the lease runs out unless renewed

    @property
    def runs(self) -> bool:
        return self.outcome in (ACQUIRED, REPLACED)


def acquire(
    entry: str, slot: str, marker: str, policy: str, lease: float, claim_prefix: str, claim_ttl: int
) -> Decision:
    """The entry's run lease for ``slot``'s run (``marker``: its slot claim's), or what ``policy`` makes of a run
    that finds it held. Raises redis-py's error when the service DB cannot be reached."""
    keys = [lease_key(entry), buffered_key(entry), fence_key(entry), claim_prefix + slot, totals_key(entry)]
    args = [policy, slot, marker, int(lease * 1000), worker_name(), claim_prefix, claim_ttl]
    outcome, *detail = ACQUIRE(get_client(SERVICE), keys, args)
    outcome = _text(outcome)
    if outcome == ACQUIRED:
        return Decision(ACQUIRED, fence=int(detail[0]))
    if outcome == REPLACED:
        holder, worker, fence = detail
        return Decision(REPLACED, fence=int(fence), holder=_text(holder), holder_worker=_text(worker))
    if outcome == BUFFERED:
        return Decision(BUFFERED, holder=_text(detail[0]))
    if outcome == HELD:
        return Decision(HELD, holder=slot, retry=max(int(detail[0]), 0) / 1000)
    return Decision(SKIPPED, holder=_text(detail[0]), waiting=_text(detail[1]))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class HeldLease:
    """A run's hold of its entry's lease: renewed every third of ``seconds`` by a thread until :meth:`release`.

    A renewal that finds the lease no longer this run's says so once, at ERROR (the entry may now run twice: the run
    outlived its lease, e.g. a worker frozen longer than it, or a replace whose terminate did not reach it), and
    stops renewing; the job itself goes on (nothing here can stop it safely)."""

    def __init__(self, entry: str, slot: str, marker: str, seconds: float, fence: int, claim_prefix: str) -> None:
        self.entry, self.slot, self.marker, self.seconds, self.fence = entry, slot, marker, seconds, fence
        self.claim_prefix = claim_prefix  # where slot claims live: a buffered slot is handed over only if it waits
        self.lost = False  # set once a renewal finds the lease taken
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease {slot}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        client = get_client(SERVICE)
        while not self._stop.wait(self.seconds / 3):
            try:
                renewed = RENEW(client, [lease_key(self.entry)], [self.marker, int(self.seconds * 1000)])
            except redis.RedisError as exc:  # the next renewal tries again; the lease lasts 3 of these periods
                logger.warning("[Cron Task](%s) %s could not renew its run lease: %s", self.entry, self.slot, exc)
                continue
            if not renewed:
                self.lost = True
                logger.error("[Cron Task](%s) %s lost its run lease (fence %d): another run of the entry may start "
                             "while it runs", self.entry, self.slot, self.fence)  # fmt: skip
                return

    def release(self) -> str:
        """Give the lease back; the slot of the buffered run waiting for it (handed the lease), or ""."""
        self._stop.set()
        self._thread.join()
        try:
            keys = [lease_key(self.entry), buffered_key(self.entry)]
            args = [self.marker, int(self.seconds * 1000), self.claim_prefix]
            _, waiting = RELEASE(get_client(SERVICE), keys, args)  # released or not: the slot to start
        except redis.RedisError as exc:  # it expires within one lease
            logger.warning("[Cron Task](%s) %s could not release its run lease: %s", self.entry, self.slot, exc)
            return ""
        return _text(waiting)  # also when not released: a hand-off this very call made, sent again


def state(entry: str) -> dict[str, str | int | float]:
    """What the service DB says of ``entry``'s overlap now, for the schedule's views: the run holding its lease
    (``running``, ``worker``, ``since``, ``fence``), the buffered slot waiting (``waiting``) and the totals so far
    (``skipped``, ``buffered``, ``replaced``). Raises redis-py's error when the service DB cannot be reached."""
    pipe = get_client(SERVICE).pipeline(transaction=False)
    pipe.hgetall(lease_key(entry))
    pipe.get(buffered_key(entry))
    pipe.hgetall(totals_key(entry))
    held, waiting, totals = pipe.execute()
    found: dict[str, str | int | float] = {outcome: int(totals.get(outcome, 0)) for outcome in (SKIPPED, BUFFERED,
                                                                                                 REPLACED)}  # fmt: skip
    if held.get("marker"):
        found.update(running=held.get("slot", ""), worker=held.get("worker", ""), fence=int(held.get("fence", 0)),
                     since=float(held.get("since", 0)))  # fmt: skip
    if waiting:
        found["waiting"] = _text(waiting)
    return found
