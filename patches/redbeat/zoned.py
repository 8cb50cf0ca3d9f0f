"""A crontab evaluated in a time zone of its own (pure: no I/O, no clock of its own).

Celery evaluates every crontab in its app's zone, and across a daylight-saving change it does what its arithmetic
happens to do: ``30 2 * * *`` in America/New_York fires at 03:30 on the spring-forward day (02:30 does not exist, so
Celery's 02:30 EST lands an hour into EDT). ``ZonedCrontab`` matches the cron against the wall clock of its zone and
resolves the wall time it finds as Kubernetes CronJob documents for its ``timeZone``:

* a wall time that does not exist (a spring-forward gap) fires once, at the gap's end (02:30 → 03:00 EDT); every
  slot of the gap fires as that one run;
* a wall time that happens twice (a fall-back fold) fires once, at its first occurrence (01:30 EDT, not again at
  01:30 EST).

The calendar matching is Celery's own crontab (the same fields, on a UTC clock, where no wall time is skipped or
repeated): only the mapping between wall time and instant is done here, with ``zoneinfo``. The stored definition
is a plain crontab (stock beats read it, in their app's zone); the zone is the entry's option, given again by the
configuration that defines the entry.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery import Celery
from celery.schedules import crontab, schedstate
from celery.utils.time import remaining

UTC = dt.UTC
# The matcher's app: Celery reads a crontab's zone from its app.
_UTC_APP = Celery("bkm-zoned-crontab", set_as_current=False)
_UTC_APP.conf.timezone = "UTC"
_UTC_APP.conf.enable_utc = True


def zone_of(name: str) -> ZoneInfo:
    """The IANA zone ``name``; a ValueError naming it otherwise (``Asia/Shanghai``, not ``CST``)."""
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"time zone {name!r}: an IANA name such as 'Asia/Shanghai' is needed")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"time zone {name!r} is not an IANA zone this system knows (e.g. 'Asia/Shanghai')") from None


def _epoch(wall: dt.datetime) -> float:
    """A naive wall time as if it were UTC: the matcher's clock."""
    return wall.replace(tzinfo=UTC).timestamp()


def _wall(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)


class ZonedCrontab(crontab):
    """``crontab(...)`` fired by the wall clock of ``zone`` (see the module docstring)."""

    def __init__(self, *args: Any, zone: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.zone_name = zone
        self.zone = zone_of(zone)
        self._matcher = crontab(self._orig_minute, self._orig_hour, self._orig_day_of_week,
                                self._orig_day_of_month, self._orig_month_of_year, app=_UTC_APP)  # fmt: skip

    # --- the wall clock ---------------------------------------------------------------------------------------

    def _next_wall(self, wall: dt.datetime) -> dt.datetime | None:
        """The first wall time after ``wall`` that the cron matches (Celery's matching, on a UTC clock). From
        Celery's delta alone, not its clock: the matcher is shared by every copy of the schedule and every thread."""
        start = dt.datetime.fromtimestamp(_epoch(wall), UTC)
        last, delta, _ = self._matcher.remaining_delta(start)
        ahead = remaining(last, delta, last)
        if ahead is None:
            return None
        return _wall(last.timestamp() + ahead.total_seconds())

    def instant(self, wall: dt.datetime) -> float:
        """When ``wall`` fires: its only instant, its first one in a fold, the gap's end in a gap."""
        first = wall.replace(tzinfo=self.zone, fold=0)
        second = wall.replace(tzinfo=self.zone, fold=1)
        if first.utcoffset() == second.utcoffset():
            return first.timestamp()
        if first.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) == wall:
            return min(first.timestamp(), second.timestamp())  # a fold: the first occurrence
        return self._transition(second.timestamp(), first.timestamp())  # a gap: between fold=1's and fold=0's

    def _transition(self, before: float, after: float) -> float:
        """The instant in [before, after] where the zone's offset changes (whole seconds, as every zone's are)."""
        offset = dt.datetime.fromtimestamp(before, self.zone).utcoffset()
        low, high = int(before), int(after) + 1
        while high - low > 1:
            middle = (low + high) // 2
            if dt.datetime.fromtimestamp(middle, self.zone).utcoffset() == offset:
                low = middle
            else:
                high = middle
        return float(high)

    def next_after(self, instant: float) -> float | None:
        """The first fire time strictly after ``instant`` (epoch seconds); None if the cron never fires again."""
        wall = dt.datetime.fromtimestamp(instant, self.zone).replace(tzinfo=None, microsecond=0)
        for _ in range(10_000):  # a handful suffice; the bound only guards a zone with a bug
            found = self._next_wall(wall)
            if found is None:
                return None
            fires = self.instant(found)
            if fires > instant:
                return fires
            wall = found  # its first occurrence is past: the instant is in the fold's second pass
        raise RuntimeError(f"{self!r}: no fire time found after {instant}")

    # --- Celery's schedule interface -------------------------------------------------------------------------

    def remaining_estimate(self, last_run_at: dt.datetime, ffwd: Any = None) -> dt.timedelta:
        after = last_run_at if last_run_at.tzinfo else last_run_at.replace(tzinfo=UTC)
        fires = self.next_after(after.timestamp())
        now = self.now()
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
        if fires is None:  # Celery's crontab would search forever; a year's wait is "not in any foreseeable time"
            return dt.timedelta(days=365 * 100)
        return dt.timedelta(seconds=fires - now.timestamp())

    def is_due(self, last_run_at: dt.datetime) -> schedstate:
        remaining = self.remaining_estimate(last_run_at).total_seconds()
        if remaining > 0:
            return schedstate(is_due=False, next=remaining)
        now = self.now()
        return schedstate(is_due=True, next=self.remaining_estimate(now).total_seconds())

    def __repr__(self) -> str:
        # Celery's own repr (its fields in m/h/dM/MY/d order), and the zone.
        return f"{super().__repr__()[:-1]} in {self.zone_name}>"

    def __reduce__(self) -> tuple[Any, ...]:
        fields = (self._orig_minute, self._orig_hour, self._orig_day_of_week, self._orig_day_of_month,
                  self._orig_month_of_year)  # fmt: skip
        return (_rebuild, (fields, self.zone_name))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ZonedCrontab) and self.zone_name == other.zone_name and super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]


def _rebuild(fields: tuple[Any, ...], zone: str) -> ZonedCrontab:
    return ZonedCrontab(*fields, zone=zone)
