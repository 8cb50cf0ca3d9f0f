"""One chaos scenario: its own redis-servers (schedule store, broker, events), beats and workers of
``tests.chaos.chaosapp``, the events they record, and the accounting of runs.

Accounting. Entries are due every ``interval`` seconds on the epoch grid (``chaosapp.every``), so the runs a window
must hold follow from the schedule: every ``<entry>@<slot>`` with a slot after the first dispatch (which fires every
entry at once, under ids off the grid) and at least ``EDGE`` seconds before the window closes (a slot closer to the
end may or may not have been served). Executed = the ids the jobs recorded as finished; lost = expected - executed;
duplicated = ids finished more than once; extra = finished ids inside the window that no slot asked for (the first
dispatch, a re-seeded schedule firing at once).
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.events import FINISHED, PUBLISHED, QUEUE
from tests.chaos.services import CeleryProcess, RedisServer
from tests.integration.conftest import wait_for

# A slot due less than this before the window closes is neither expected nor extra.
EDGE = 2.0
# A beat armed with this faults before its 21st message: 20 of a slot's 50 are out, 30 are not, nothing is committed.
MID_BATCH = 21
# The schedule store's keys (the default prefix; see patches/redbeat/store.py).
PREFIX = "redbeat:"
SCHEDULE_KEY, LOCK_KEY = PREFIX + ":schedule", PREFIX + ":lock"


@dataclass(frozen=True)
class Event:
    kind: str
    id: str
    ts: float
    pid: int
    fields: dict[str, Any]

    @property
    def entry(self) -> str:
        return self.id.rpartition("@")[0]

    @property
    def epoch(self) -> int:
        return int(self.id.rpartition("@")[2])


@dataclass
class Tally:
    expected: set[str]
    executed: collections.Counter[str]
    window: tuple[float, float]
    edge: set[str] = field(default_factory=set)  # executed, due too close to the end to count either way

    @property
    def lost(self) -> set[str]:
        return self.expected - set(self.executed)

    @property
    def duplicated(self) -> dict[str, int]:
        return {task_id: n for task_id, n in self.executed.items() if n > 1}

    @property
    def extra(self) -> set[str]:
        return set(self.executed) - self.expected - self.edge

    @property
    def runs(self) -> int:
        """Executions of expected slots."""
        return sum(self.executed[task_id] for task_id in self.expected)


@dataclass
class Row:
    scenario: str
    expected: int
    executed: int
    lost: int
    duplicated: int
    extra: int
    failover: float | None
    seconds: float
    note: str = ""

    HEADER = ("scenario", "expected", "executed", "lost", "duplicated", "extra", "failover_s", "run_s", "note")

    def cells(self) -> tuple[str, ...]:
        failover = "-" if self.failover is None else f"{self.failover:.2f}"
        return (self.scenario, str(self.expected), str(self.executed), str(self.lost), str(self.duplicated),
                str(self.extra), failover, f"{self.seconds:.0f}", self.note)  # fmt: skip


def table(rows: Iterable[Row]) -> str:
    lines = [Row.HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(Row.HEADER) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[-1]
        for line in lines
    )


def write_fault(path: Path, *fault: object) -> None:
    """Arm a process's fault file (see chaosapp) with ``action, at[, seconds]``; renamed into place, so the process
    never reads half a file."""
    path.with_suffix(".tmp").write_text(" ".join(map(str, fault)))
    path.with_suffix(".tmp").rename(path)


class Scenario:
    """Services and processes of one scenario; ``close`` stops every one of them (by PID), whatever happened."""

    def __init__(
        self,
        name: str,
        tmp: Path,
        *,
        entries: int = 50,
        interval: float = 5.0,
        lock_timeout: float = 3.0,
        job_seconds: float = 0.0,
        persistent_broker: bool = False,
        persistent_store: bool = False,
        overlap: str = "allow",
        run_lease: int = 60,
    ) -> None:
        self.name, self.tmp = name, tmp
        self.entries, self.interval, self.lock_timeout = entries, interval, lock_timeout
        self.job_seconds = job_seconds
        self.overlap, self.run_lease = overlap, run_lease
        self.started_at = time.time()
        self.procs: list[CeleryProcess] = []
        self.servers: list[RedisServer] = []
        self.store = self._server("store", persistent=persistent_store)
        self.broker = self._server("broker", persistent=persistent_broker)
        self.events = self._server("events")

    def _server(self, name: str, persistent: bool = False) -> RedisServer:
        server = RedisServer(name, self.tmp, persistent)
        self.servers.append(server)  # before start: close() stops it even if it never answered
        return server.start()

    # --- processes --------------------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {
            "CHAOS_STORE_URL": self.store.url(),
            "CHAOS_BROKER_URL": self.broker.url(),
            "CHAOS_EVENTS_URL": self.events.url(),
            "CHAOS_ENTRIES": str(self.entries),
            "CHAOS_INTERVAL": str(self.interval),
            "CHAOS_LOCK_TIMEOUT": str(self.lock_timeout),
            "CHAOS_JOB_SECONDS": str(self.job_seconds),
            "CHAOS_OVERLAP": self.overlap,
            "BKAPP_SETTINGS_CRON_RUN_LEASE": str(int(self.run_lease)),
            # The platform's storage (the workers' dedupe claims in the service DB) on the events server.
            "BK_MONITOR_REDIS_HOST": self.events.host,
            "BK_MONITOR_REDIS_PORT": str(self.events.port),
            "PYTHONUNBUFFERED": "1",
        }

    def _start(self, name: str, args: list[str], **env: str) -> CeleryProcess:
        proc = CeleryProcess(name, args, self.env() | env, self.tmp)
        self.procs.append(proc)
        return proc

    def beat(self, name: str, **env: str) -> CeleryProcess:
        """A beat; ``env`` on top of the scenario's (another store URL through a proxy, a skewed clock …)."""
        args = ["beat", "-S", "redbeat.RedBeatScheduler", "-s", str(self.tmp / f"{name}.schedule")]
        return self._start(name, args, CHAOS_BEAT_FAULT_FILE=str(self.fault_file(name)), **env)

    def worker(self, name: str, concurrency: int = 1, **env: str) -> CeleryProcess:
        args = ["worker", "-Q", QUEUE, "-c", str(concurrency), "-P", "prefork", "-n", f"{name}@%h",
                "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
        return self._start(name, args, CHAOS_WORKER_FAULT_FILE=str(self.fault_file(name)), **env)

    def fault_file(self, name: str) -> Path:
        """The fault file of the beat or worker started as ``name``."""
        return self.tmp / f"{name}.fault"

    def arm(self, proc: CeleryProcess, action: str, at: int, *extra: object) -> None:
        """Make a beat fault itself at the ``at``-th message it publishes from now on, a worker at the ``at``-th
        message it takes (see chaosapp)."""
        write_fault(self.fault_file(proc.name), action, at, *extra)

    def wait_ready(self, workers: list[CeleryProcess], beats: list[CeleryProcess], timeout: float = 60) -> None:
        for worker in workers:
            worker.wait_logged("ready.", timeout)
        for beat in beats:
            beat.wait_logged("beat: Starting...", timeout)

    def launch(
        self, beats: int = 2, workers: int = 2, concurrency: int = 1
    ) -> tuple[list[CeleryProcess], list[CeleryProcess], float]:
        """Start the workers and beats (all at once: they import in parallel), wait until they are up and the
        leader published every entry's first run; -> workers, beats, when that first dispatch began."""
        started_workers = [self.worker(f"w{i + 1}", concurrency) for i in range(workers)]
        started_beats = [self.beat(chr(ord("a") + i)) for i in range(beats)]
        self.wait_ready(started_workers, started_beats)
        return started_workers, started_beats, self.wait_first_dispatch()

    def leader(self, beats: list[CeleryProcess]) -> CeleryProcess:
        """The beat that published last."""
        last = self.read(PUBLISHED)[-1].pid
        return next(beat for beat in beats if beat.pid == last)

    def stop_all(self, procs: Iterable[CeleryProcess]) -> None:
        for proc in procs:
            proc.stop()

    def close(self) -> None:
        for proc in self.procs:
            proc.stop()
        for server in self.servers:
            server.close()

    # --- what happened ----------------------------------------------------------------------------------------

    def read(self, kind: str) -> list[Event]:
        raws = self.events.client().lrange(kind, 0, -1)
        out = []
        for raw in raws:
            data = json.loads(raw)
            out.append(Event(kind, str(data.get("id", "")), float(data["ts"]), int(data["pid"]), data))
        return out

    def wait_events(self, kind: str, predicate: Callable[[Event], bool], count: int, timeout: float) -> list[Event]:
        """Until at least ``count`` events of ``kind`` match; -> the matching events."""
        return list(
            wait_for(
                lambda: (hits := [e for e in self.read(kind) if predicate(e)]) and len(hits) >= count and hits,
                timeout,
                f"{count} {kind} event(s)",
            )
        )

    def wait_first_dispatch(self, timeout: float = 60) -> float:
        """Until the leader published every entry's first run; -> when it started publishing them."""
        return min(e.ts for e in self.wait_events(PUBLISHED, lambda e: True, self.entries, timeout))

    def wait_committed(self, slot: int, timeout: float) -> None:
        """Until no entry is due at ``slot`` any more: the slot was published and committed."""
        client = self.store.client()
        wait_for(lambda: client.zcount(SCHEDULE_KEY, 0, slot + 0.5) == 0, timeout, f"slot {slot} to be committed")

    def lock_token(self) -> str | None:
        return self.store.client().get(LOCK_KEY)

    def wait_lock_change(self, old: str | None, timeout: float) -> float:
        """Poll the lock every 20 ms until another token holds it; -> when it was seen."""
        client = self.store.client()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            token = client.get(LOCK_KEY)
            if token is not None and token != old:
                return time.time()
            time.sleep(0.02)
        raise AssertionError(f"no other beat took the lock within {timeout:.0f}s")

    # --- slots and accounting ---------------------------------------------------------------------------------

    def next_slot(self, after: float) -> int:
        """The first slot of the grid after ``after``."""
        return int((after // self.interval + 1) * self.interval)

    def slot_ids(self, slot: int) -> set[str]:
        return {f"{name}@{slot}" for name in self.names}

    @property
    def names(self) -> list[str]:
        return [f"e{i:02d}" for i in range(self.entries)]

    def sleep_until(self, when: float) -> None:
        while (left := when - time.time()) > 0:
            time.sleep(min(left, 0.2))

    def finish(self, beats: list[CeleryProcess], slots_after: int = 1) -> float:
        """Run on until ``slots_after`` more slots were served, stop the beats, let the workers drain; -> the time
        the window closed."""
        self.sleep_until(self.next_slot(time.time()) + (slots_after - 1) * self.interval + EDGE + 0.5)
        closed = time.time()
        self.stop_all(beats)
        self.drain()
        return closed

    def drain(self, timeout: float = 30) -> None:
        """Until the broker holds nothing (queued or unacked) for a second: every run that will happen did."""
        client = self.broker.client()
        quiet_since = [time.monotonic()]

        def empty() -> bool:
            busy = client.llen(QUEUE) or client.hlen("unacked")
            if busy:
                quiet_since[0] = time.monotonic()
            return not busy and time.monotonic() - quiet_since[0] >= 1.0

        try:
            wait_for(empty, timeout, "the workers to drain the broker")
        except AssertionError as exc:
            consumers = client.zrange("_kombu.consumers", 0, -1, withscores=True)
            raise AssertionError(f"{exc}: {client.llen(QUEUE)} queued, unacked {client.hkeys('unacked')}, consumers "
                                 f"(id, last beat) {consumers} at {client.time()[0]}") from None  # fmt: skip

    def tally(self, start: float, close: float) -> Tally:
        first = self.next_slot(start)
        slots = range(first, int(close - EDGE) + 1, int(self.interval))
        expected = {f"{name}@{slot}" for name in self.names for slot in slots}
        executed = collections.Counter(e.id for e in self.read(FINISHED))
        edge = {task_id for task_id in executed if int(task_id.rpartition("@")[2]) > close - EDGE}
        return Tally(expected, executed, (start, close), edge)

    def committed_problems(self, start: float) -> list[str]:
        """The store against what the workers ran: each entry's ``total_run_count`` must equal the distinct runs
        executed, and every slot before its committed score (from the first dispatch on) must have been executed."""
        client = self.store.client()
        runs = collections.defaultdict(set)
        for event in self.read(FINISHED):
            runs[event.entry].add(event.epoch)
        problems = []
        for name in self.names:
            meta = json.loads(client.hget(PREFIX + name, "meta") or "{}")
            score = client.zscore(SCHEDULE_KEY, PREFIX + name)
            if score is None:
                problems.append(f"{name}: not in the schedule")
                continue
            count = int(meta.get("total_run_count") or 0)
            if count != len(runs[name]):
                problems.append(f"{name}: total_run_count {count}, {len(runs[name])} distinct run(s) executed")
            due = range(self.next_slot(start), int(score), int(self.interval))
            missing = [slot for slot in due if slot not in runs[name]]
            if missing:
                problems.append(f"{name}: committed up to {score} but slots {missing} never ran")
        return problems

    def assert_every_run_once(self, tally: Tally, start: float, committed: bool = True) -> None:
        """No expected run lost, none run twice, and (``committed``) the store agrees with what ran."""
        assert not tally.lost, f"{len(tally.lost)} run(s) lost: {sorted(tally.lost)[:10]}"
        assert not tally.duplicated, f"run more than once: {tally.duplicated}"
        problems = self.committed_problems(start) if committed else []
        assert not problems, problems

    def row(self, tally: Tally, failover: float | None, note: str = "") -> Row:
        return Row(
            scenario=self.name,
            expected=len(tally.expected),
            executed=tally.runs,
            lost=len(tally.lost),
            duplicated=len(tally.duplicated),
            extra=len(tally.extra),
            failover=failover,
            seconds=time.time() - self.started_at,
            note=note,
        )
