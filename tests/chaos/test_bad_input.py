"""Scenario 7: bad input. Each bad value gives one clear error naming it, and the rest keeps running.

The platform's own entry points (``manage.py check``/``hash_ring``, ``celery … beat``/``worker`` of the backend app)
against a redis-server of the case's own, with one bad value in the environment (``badinput.py``):

7a. a malformed crontab entry (``DEFAULT_CRONTAB[1]`` with minute 61) between two good ones;
7b. an unknown dotted path (``DEFAULT_CRONTAB[1]``) between two good ones;
7c. an unreachable Consul agent (a closed port): ``hash_ring`` exits 1 naming the address; beat names it once and
    leads by the Redis lock alone (the ring is advice: a Consul outage never stops scheduling);
7d. a wrong Redis password: beat and worker keep running and retrying, and recover once the password matches;
7e. an illegal cluster name, the prefix of every queue name: the processes refuse to start, naming it;
7f. a worker asked to consume a queue name the platform never publishes to (``-Q 'celery_cron,celery cron!'``).

Each case raises its own error class when the platform falls short; their docstrings say what this suite found
wrong here before it was fixed.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from alarm_backends.service.scheduler.crontab import task_name
from tests.chaos.badinput import Platform, PlatformProcess, good_tasks, is_error, lines_with, quote
from tests.chaos.harness import Row
from tests.integration.conftest import wait_for
from tests.metrics import metric_samples, value
from tests.net import free_port

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

TRACEBACK = "Traceback (most recent call last)"
# The bad entry's place in DEFAULT_CRONTAB (see badinput.crontab).
CULPRIT = "DEFAULT_CRONTAB[1]"
# TEST-NET-1 (RFC 5737): never routed, only this beat's name on the ring. A loopback one would be refused by
# `manage.py hash_ring`'s system checks (bkmonitor.E003) before it asked Consul.
HOST_ADDR = "192.0.2.10"
BAD_QUEUE = "celery cron!"
VARIABLE = "BK_MONITOR_ALARM_BACKEND_CLUSTER_NAME"


class MalformedEntryStopsEverythingError(AssertionError):
    """One malformed entry stopped beat and every worker (the loader raised on the first bad entry and the app
    exited), so the good entries never ran; now each bad entry is one error line and the others register."""


class TracebackSpamError(AssertionError):
    """A job that cannot be imported was logged twice: the runner's clear `![Cron Task](…) error` line, then
    Celery's `raised unexpected` with a ~50-line traceback; now the task declares the error as expected (throws)."""


class StoreErrorWithoutAddressError(AssertionError):
    """Beat's error for a store it cannot log in to did not say which store, and came ~7 s late because a refused
    password (a ConnectionError to redis-py) was retried; now the line names the redacted store URL at once."""


class UncheckedSettingError(AssertionError):
    """No system check built the cluster, so `manage.py check` (and `platform start`'s pre-flight) passed an illegal
    cluster name that beat and the workers then refused; now every process, `manage.py check` included, refuses it
    at settings load with one line naming the variable (exit status 2)."""


class QueueNotRefusedError(AssertionError):
    """Nothing checked a worker's -Q: a name no platform queue can have was consumed silently; now the worker logs
    one error naming it and does not consume it."""


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Callable[[str], Platform]]:
    made: list[Platform] = []

    def make(name: str) -> Platform:
        case = Platform(name, tmp_path)
        made.append(case)
        return case

    try:
        yield make
    finally:
        for case in made:
            case.close()


def the_line(text: str, needle: str, who: str) -> str:
    """The one line of ``text`` naming ``needle``, with no traceback anywhere in ``text``."""
    named = lines_with(text, needle)
    assert len(named) == 1, f"{who}: {len(named)} lines name {needle!r}, not one:\n{text[-3000:]}"
    assert TRACEBACK not in text, f"{who} logged a traceback:\n{text[-3000:]}"
    return named[0]


def ticks(case: Platform) -> float:
    """How many ticks the case's beat has made: the count of its tick-duration histogram (the only process of the
    case that writes it)."""
    return value(metric_samples(case.tmp / "metrics"), "bkmonitor_beat_tick_duration_seconds_count")


def good_runs_once(runs: collections.Counter[tuple[str, str, str]]) -> bool:
    return all(runs[(task, "success", "")] == 1 for task in good_tasks())


@pytest.mark.timeout(60)
def test_a_malformed_crontab_entry(platform: Callable[[str], Platform], report: Callable[[Row], None]) -> None:
    case = platform("7a malformed crontab entry")
    env = case.env(["tests.integration.jobs.boom", "61 * * * *", "global"])
    beat, worker = case.beat(env), case.worker(env)
    status, checked = case.manage("check", ["check"], env)
    runs = case.wait_runs(len(good_tasks()), 30)

    line = the_line(checked, CULPRIT, "manage.py check")
    for proc in (beat, worker):
        the_line(proc.log(), CULPRIT, proc.name)
    stopped = [f"{p.name} exited {p.proc.returncode}" for p in (beat, worker) if not p.alive()]
    note = f"{quote(line)}; {', '.join(stopped) or 'beat and worker kept running'}"
    report(case.row(note, runs))

    assert status == 1 and "'61 * * * *'" in line, checked
    if stopped or not good_runs_once(runs):
        raise MalformedEntryStopsEverythingError(f"{'; '.join(stopped)}; good runs: {dict(runs)}")


@pytest.mark.timeout(60)
def test_an_unknown_dotted_path(platform: Callable[[str], Platform], report: Callable[[Row], None]) -> None:
    case = platform("7b unknown dotted path")
    bad_path = "tests.chaos.nothere.job"
    bad_task = task_name(bad_path)
    env = case.env([bad_path, "0 0 * 1 1", "global"])
    beat, worker = case.beat(env), case.worker(env)
    status, checked = case.manage("check", ["check"], env)
    runs = case.wait_runs(len(good_tasks()) + 1, 30)
    # Celery's own line on how the task ended comes after the run log's record: wait for it before counting.
    wait_for(lambda: any("] raised " in line for line in lines_with(worker.log(), f"Task {bad_task}[")), 15,
             "Celery to log the failed task")  # fmt: skip

    check_line = the_line(checked, CULPRIT, "manage.py check")
    failed = lines_with(worker.log(), f"![Cron Task]({bad_path})")  # named by its path, as the original did
    tracebacks = worker.log().count(TRACEBACK)
    note = f"{quote(failed[0] if failed else '(no error line)')}; then {tracebacks} traceback(s)"
    report(case.row(note, runs))

    assert status == 1 and bad_path in check_line, checked
    assert len(failed) == 1 and f"cron job {bad_path!r} cannot be imported" in failed[0], failed
    assert runs[(bad_task, "failed", "CronJobImportError")] == 1, runs
    assert good_runs_once(runs), runs
    assert beat.alive() and worker.alive()
    if tracebacks:
        raise TracebackSpamError(f"{tracebacks} traceback(s) after the clear line:\n{worker.log()[-2500:]}")


@pytest.mark.timeout(60)
def test_an_unreachable_consul(platform: Callable[[str], Platform], report: Callable[[Row], None]) -> None:
    case = platform("7c unreachable Consul")
    port = free_port()  # bound and released at once: nothing listens there
    address = f"http://127.0.0.1:{port}"
    # A 3 s lease, renewed every second: the leader ticks (and asks Consul) once a second, not once in ten.
    env = case.env(CONSUL_HOST="127.0.0.1", CONSUL_PORT=str(port), BK_MONITOR_HOST_ADDR=HOST_ADDR,
                   BKAPP_SETTINGS_REDBEAT_LOCK_TIMEOUT="3")  # fmt: skip
    beat = case.beat(env)
    status, printed = case.manage("hash_ring", ["hash_ring"], env)
    beat.wait_logged(address, 30)
    wait_for(lambda: case.lock_holder() and case.queued("celery_cron"), 20, "the beat to lead and dispatch")
    # Three more ticks, each asking Consul again: the beat still says it once.
    seen = ticks(case)
    wait_for(lambda: ticks(case) >= seen + 3, 15, "three more ticks of the beat")
    ring_line = the_line(printed, address, "manage.py hash_ring")
    beat_line = the_line(beat.log(), address, "beat")
    consul = beat_line[beat_line.index("Consul agent at") :]
    report(case.row(f"hash_ring exit {status}: {quote(ring_line)}; beat leads: {quote(consul)}"))

    assert status == 1 and ring_line.startswith("CommandError: Consul agent at"), printed
    assert beat.alive() and is_error(beat_line) and "the Redis lock alone decides" in beat_line, beat_line


@pytest.mark.timeout(90)
def test_a_wrong_redis_password(platform: Callable[[str], Platform], report: Callable[[Row], None]) -> None:
    case = platform("7d wrong Redis password")
    case.require_password("the-right-one")
    address = f"{case.redis.host}:{case.redis.port}"
    env = case.env(BK_MONITOR_REDIS_PASSWORD="wrong")
    beat, worker = case.beat(env), case.worker(env)
    worker.wait_logged(f"Cannot connect to redis://:**@{address}/", 30)
    beat_errors = wait_errors(beat, 30)
    worker_errors = lines_with(worker.log(), " ERROR ")
    assert beat.alive() and worker.alive(), "a process gave up on a wrong password"
    assert TRACEBACK not in beat.log() + worker.log()
    # The operator fixes it (here: the server takes the password the platform has); nothing is restarted.
    fixed = time.time()
    case.require_password("wrong")
    beat.wait_logged("beat: acquired the lock", 30)
    runs = case.wait_runs(len(good_tasks()), 40)
    recovered = time.time() - fixed
    note = (f"beat {len(beat_errors)}x: {quote(beat_errors[0])}; worker {len(worker_errors)}x: "
            f"{quote(worker_errors[0])}; all ran {recovered:.1f}s after the password matched")  # fmt: skip
    report(case.row(note, runs))

    assert all(address in line for line in worker_errors), worker_errors
    assert good_runs_once(runs), runs
    if not all(address in line for line in beat_errors):
        raise StoreErrorWithoutAddressError(f"beat's errors do not name the store at {address}: {beat_errors}")


def wait_errors(proc: PlatformProcess, timeout: float) -> list[str]:
    """Until ``proc`` logged an error or warning; -> those it logged."""

    def errors() -> list[str]:
        return [line for line in proc.log().splitlines() if is_error(line)]

    wait_for(errors, timeout, f"{proc.name} to log an error")
    return errors()


@pytest.mark.timeout(60)
def test_an_illegal_cluster_name(platform: Callable[[str], Platform], report: Callable[[Row], None]) -> None:
    case = platform("7e queue prefix: cluster 'eu west/1'")
    name = "eu west/1"  # every queue outside the default cluster is `<cluster>-<queue>`
    env = case.env(BK_MONITOR_ALARM_BACKEND_CLUSTER_NAME=name)
    procs = [case.beat(env), case.worker(env)]
    status, checked = case.manage("check", ["check"], env)
    statuses = [proc.wait_exit(60) for proc in procs]
    lines = [the_line(proc.log(), repr(name), proc.name) for proc in procs]
    report(case.row(f"beat, worker exit {'/'.join(map(str, statuses))}: {quote(lines[0])}; check exit {status}"))

    # Exit status 2: refused for its configuration (config.tools.validation), which supervisord does not restart.
    assert statuses == [2, 2], statuses
    assert all(line.startswith(f"bkmonitor: {VARIABLE}={name!r}: invalid cluster name") for line in lines), lines
    assert case.lock_holder() is None
    if status != 2 or len(lines_with(checked, repr(name))) != 1:
        raise UncheckedSettingError(f"manage.py check exited {status}: {checked.strip()}")


@pytest.mark.timeout(60)
def test_a_queue_name_with_illegal_characters(
    platform: Callable[[str], Platform], report: Callable[[Row], None]
) -> None:
    case = platform("7f queue: worker -Q 'celery cron!'")
    env = case.env()
    beat, worker = case.beat(env), case.worker(env, queues=f"celery_cron,{BAD_QUEUE}")
    runs = case.wait_runs(len(good_tasks()), 30)
    named = [line for line in lines_with(worker.log(), BAD_QUEUE) if is_error(line)]
    consumed = any(line.strip().startswith(f".> {BAD_QUEUE}") for line in worker.log().splitlines())
    report(case.row(quote(named[0]) if named else f"no error; consumed {BAD_QUEUE!r}: {consumed}", runs))

    assert beat.alive() and worker.alive()
    assert good_runs_once(runs), runs
    if len(named) != 1:
        raise QueueNotRefusedError(f"{len(named)} error line(s) name {BAD_QUEUE!r}; consumed: {consumed}")
