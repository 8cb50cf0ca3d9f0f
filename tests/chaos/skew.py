"""Skewing one process's wall clock with libfaketime, and proving it took.

The PyPI package ``libfaketime`` (dev extra) builds the C library at install time and ships it beside its Python
module; a process started with ``LD_PRELOAD=<that .so>`` and ``FAKETIME="+30s"`` (libfaketime's relative offset)
reads every wall clock (``time()``, ``gettimeofday``, ``clock_gettime(CLOCK_REALTIME)``) 30 s ahead, from its first
instruction, however it asks. ``DONT_FAKE_MONOTONIC=1`` keeps the monotonic clocks real: the scheduler times its
lease on them, and a faked monotonic clock would break the lease rather than test the wall clock.

Only the Python module is located, never imported: it pulls in pytz and dateutil, and nothing of it runs here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.processes import stop_group

# Where the package keeps the library it built (see libfaketime.get_reload_information).
LIBRARY = Path("vendor", "libfaketime", "src", "libfaketime.so.1")
# How far a probed offset may be from the one asked for: the probe's reads are a few ms apart.
TOLERANCE = 0.5

# Run with the skewed environment: what the process sees, and the Redis server's clock as it answers.
PROBE = """
import datetime, json, sys, time
import redis
client = redis.Redis.from_url(sys.argv[1])
seconds, micros = client.time()
print(json.dumps({"time": time.time(), "now": datetime.datetime.now(datetime.UTC).timestamp(),
                  "monotonic": time.monotonic(), "redis": seconds + micros / 1e6}))
"""


class FaketimeUnavailableError(RuntimeError):
    """libfaketime is not installed here, or it did not skew a process: the reason says which."""


def library() -> Path:
    spec = importlib.util.find_spec("libfaketime")
    if spec is None or spec.origin is None:
        raise FaketimeUnavailableError("the libfaketime package is not installed (pip install '.[dev]')")
    path = Path(spec.origin).parent / LIBRARY
    if not path.is_file():
        raise FaketimeUnavailableError(f"the libfaketime package has no built library at {path}")
    return path


def skewed_env(offset: int) -> dict[str, str]:
    """The environment that runs a process ``offset`` seconds off the real wall clock."""
    preload = os.environ.get("LD_PRELOAD", "")
    return {
        "LD_PRELOAD": f"{library()}:{preload}" if preload else str(library()),
        "FAKETIME": f"{offset:+d}s",
        "DONT_FAKE_MONOTONIC": "1",
    }


@dataclass(frozen=True)
class ClockProbe:
    """What a process started with a skewed environment saw, in seconds off the real clock."""

    time: float  # time.time(), against the Redis TIME it read right after (the server's clock is not skewed)
    datetime: float  # datetime.now(), likewise
    monotonic: float  # time.monotonic() outside the window this process watched the probe run in (0: inside)
    redis: float  # the Redis server's TIME outside that window (0: inside)

    def problems(self, offset: int) -> list[str]:
        wanted = {"time.time()": offset, "datetime.now()": offset, "time.monotonic()": 0, "Redis TIME": 0}
        seen = {"time.time()": self.time, "datetime.now()": self.datetime, "time.monotonic()": self.monotonic,
                "Redis TIME": self.redis}  # fmt: skip
        return [f"{name} off by {seen[name]:+.2f}s, wanted {want:+d}s" for name, want in wanted.items()
                if abs(seen[name] - want) > TOLERANCE]  # fmt: skip


def outside(value: float, low: float, high: float) -> float:
    """How far ``value`` lies outside [low, high]; 0 inside."""
    return value - high if value > high else value - low if value < low else 0.0


def probe(env: dict[str, str], redis_url: str, timeout: float = 30) -> ClockProbe:
    """Start a Python with ``env`` (in its own process group) and read its clocks against this process's."""
    before, mono_before = time.time(), time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", PROBE, redis_url],
        env=os.environ | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        stop_group(proc, grace=5)
    after, mono_after = time.time(), time.monotonic()
    if proc.returncode != 0:
        raise FaketimeUnavailableError(f"the probe failed ({proc.returncode}): {err.decode(errors='replace')[-500:]}")
    seen = json.loads(out)
    # The wall clocks are compared with the server's TIME read a moment later (a start-up of the interpreter would
    # blur a comparison with this process's clock); the real clocks must fall inside the window the probe ran in.
    return ClockProbe(
        time=seen["time"] - seen["redis"],
        datetime=seen["now"] - seen["redis"],
        monotonic=outside(seen["monotonic"], mono_before, mono_after),
        redis=outside(seen["redis"], before, after),
    )


def skewed_or_skip(offset: int, redis_url: str) -> dict[str, str]:
    """The environment of a process ``offset`` seconds off, checked in a probe process; skip (fail under
    BKM_REQUIRE_SERVICES=1, as `make test` installs the library) when libfaketime is missing or does not skew."""
    from tests.gate import skip_or_fail

    try:
        env = skewed_env(offset)
        problems = probe(env, redis_url).problems(offset)
    except FaketimeUnavailableError as exc:
        problems = [str(exc)]
    if problems:
        skip_or_fail(f"libfaketime cannot skew a process here: {'; '.join(problems)}")
    return env
