"""The scheduler's settings, read from the Celery app's configuration (lowercase names, as the app sets them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from patches.redbeat.policy import MissedRun

# The original held a 300 s lock refreshed every tick (≤ 60 s) and retried it every 60 s, so a crashed leader was
# replaced after 5-6 minutes. A short lease renewed at a third of its TTL, with standbys retrying every second,
# replaces it within TTL + 1 s; `redbeat_lock_timeout = 300` restores the original's figure.
DEFAULT_LOCK_TIMEOUT = 30.0
DEFAULT_STANDBY_INTERVAL = 1.0
DEFAULT_PUBLISH_CHUNK = 1000


@dataclass(frozen=True)
class SchedulerConfig:
    key_prefix: str
    lock_timeout: float
    standby_interval: float
    publish_chunk: int
    fetch_limit: int
    missed_run: MissedRun
    first_run_now: bool
    # ``module:Class`` of an object with ``allows() -> bool``, ``max_interval`` (the longest beat may sleep between
    # two questions) and ``close()``, built with the app: asked each tick whether this beat may lead at all (the
    # platform's Consul ring leader check); empty means always.
    leader_gate: str = ""
    # Replicas that must hold each commit before the tick goes on (Redis WAIT; 0: none, as stock): with a replica,
    # a failover of the store's master cannot roll back slots already committed.
    commit_replicas: int = 0

    @property
    def renew_interval(self) -> float:
        return self.lock_timeout / 3

    @classmethod
    def from_app(cls, conf: Any) -> SchedulerConfig:
        # Unset means the default; a set value is used as given or refused, never replaced: `0` is not "30".
        lock_timeout = seconds(conf, "redbeat_lock_timeout", DEFAULT_LOCK_TIMEOUT, minimum=1)
        standby_interval = seconds(conf, "redbeat_standby_interval", DEFAULT_STANDBY_INTERVAL, minimum=0.1)
        return cls(
            key_prefix=conf.get("redbeat_key_prefix") or "redbeat:",
            lock_timeout=lock_timeout,
            standby_interval=standby_interval,
            publish_chunk=int(conf.get("redbeat_publish_chunk") or DEFAULT_PUBLISH_CHUNK),
            fetch_limit=int(conf.get("redbeat_fetch_limit") or 0),
            missed_run=MissedRun.parse(conf.get("redbeat_missed_run"), where="redbeat_missed_run: "),
            first_run_now=first_run(conf.get("redbeat_first_run")),
            leader_gate=str(conf.get("redbeat_leader_gate") or ""),
            commit_replicas=count(conf, "redbeat_commit_replicas"),
        )


def count(conf: Any, name: str) -> int:
    """A whole-number setting, 0 when unset."""
    value = conf.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}={value!r} must be a whole number, at least 0")
    return value


def seconds(conf: Any, name: str, default: float, minimum: float) -> float:
    """A duration setting: ``default`` when unset (None), else a number of at least ``minimum`` seconds."""
    value = conf.get(name)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    # A negative standby interval busy-loops a standby; NaN fails every comparison, so test the good case.
    if isinstance(value, bool) or not number >= minimum:
        raise ValueError(f"{name}={value!r} must be a number of seconds, at least {minimum:g}")
    return number


FIRST_RUN = ("now", "next")


def first_run(value: Any) -> bool:
    """``next`` (default): a new entry waits for its first slot (what stock celery-redbeat does, since it stamps
    ``last_run_at`` with the time an entry is first saved); ``now``: it fires at once, on the first tick. Whether an
    entry is new is the store's word: a store that lost its data makes every entry new."""
    value = value or "next"
    if value not in FIRST_RUN:
        raise ValueError(f"redbeat_first_run={value!r} must be one of {', '.join(FIRST_RUN)}")
    return bool(value == "now")
