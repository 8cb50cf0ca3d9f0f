"""pytest plugin for celery-redbeat's own test suite, run against the patched scheduler on a real Redis.

Loaded only by ``tests/integration/test_redbeat_upstream.py``'s subprocess, as a top-level module (its directory
is put on ``PYTHONPATH``): the upstream suite's package is called ``tests`` too, so nothing of this repository's
``tests`` package may be imported there. What it does:

* installs the patched scheduler (``patches.redbeat.install()``) before the upstream modules import, so their
  ``from redbeat import RedBeatScheduler`` and ``from redbeat.schedulers import get_redis`` are the patched ones;
* puts a real Redis where the upstream fixtures put their FakeRedis: ``RedBeatCase.setup`` builds its client from
  the names ``FakeServer`` and ``FakeRedis`` of ``tests/basecase.py``, rebound here to :class:`LoopbackServer` and
  :func:`real_redis` (a client the project's builder makes for ``BKM_UPSTREAM_REDIS_URL``). The fixture places it
  on ``app.redbeat_redis``, where the patched store finds its client, so the scheduler, stock's entry API and the
  tests' own reads all see one store; the fixture flushes it before each test, as it flushed its FakeRedis;
* runs the JSON tests on the project's codec (``patches.redbeat.entries``) instead of stock's;
* records, per test, which modules of ``patches/redbeat`` ran, into ``BKM_UPSTREAM_REACH`` (JSON), so the project
  test can show that the suite exercises the project and not stock code. What the harness and the upstream
  fixture do to set a test up (build the client, flush the DB through it) does not count.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable, Generator
from importlib.metadata import version
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import pytest
import redis

REPO = Path(__file__).resolve().parents[2]
URL_VARIABLE = "BKM_UPSTREAM_REDIS_URL"
REACH_VARIABLE = "BKM_UPSTREAM_REACH"
LOOPBACK = "127.0.0.1"
# The upstream suite's own ``tests`` package must win the name, so the repository goes last on the path: only what
# no earlier entry provides (``patches``) is found there.
sys.path.append(str(REPO))

import patches.redbeat  # noqa: E402
from patches.redbeat.client import build_redis  # noqa: E402
from patches.redbeat.entries import EntryDecoder, EntryEncoder  # noqa: E402

patches.redbeat.install()
PATCHED_DIR = str(Path(patches.redbeat.__file__).parent)


class LoopbackServer:
    """Stands in for fakeredis's ``FakeServer``: the Redis at ``BKM_UPSTREAM_REDIS_URL``. ``connected = False`` (an
    outage, in fakeredis) points every client made for it at a loopback port that refuses connections."""

    def __init__(self) -> None:
        self.url = os.environ[URL_VARIABLE]
        self._clients: list[tuple[redis.Redis, str, int]] = []  # each with its real host and port
        self._connected = True
        # Bound but never listening: a connection to it is refused, and no other process can take the port.
        self._refuser = socket.socket()
        self._refuser.bind((LOOPBACK, 0))
        SERVERS.append(self)

    def attach(self, client: redis.Redis) -> None:
        kwargs = client.connection_pool.connection_kwargs
        self._clients.append((client, kwargs["host"], int(kwargs["port"])))
        self._point(client, kwargs["host"], int(kwargs["port"]))

    @property
    def connected(self) -> bool:
        return self._connected

    @connected.setter
    def connected(self, value: bool) -> None:
        self._connected = bool(value)
        for client, host, port in self._clients:
            self._point(client, host, port)

    def _point(self, client: redis.Redis, host: str, port: int) -> None:
        pool = client.connection_pool
        pool.disconnect()  # open connections would still reach the server
        address = (host, port) if self._connected else self._refuser.getsockname()
        pool.connection_kwargs.update(host=address[0], port=address[1])
        pool.reset()

    def close(self) -> None:
        for client, _, _ in self._clients:
            client.connection_pool.disconnect()
        self._refuser.close()


SERVERS: list[LoopbackServer] = []


def real_redis(server: LoopbackServer | None = None, **options: Any) -> redis.Redis:
    """Stands in for ``FakeRedis(decode_responses=True, server=...)``: the client the project builds for the URL."""
    server = server if server is not None else LoopbackServer()
    client = build_redis(server.url, options)
    server.attach(client)
    return client


# Code whose calls into patches/redbeat set a test up rather than test anything (RedBeatCase.setup joins it).
HARNESS: set[CodeType] = {real_redis.__code__}

# Names the upstream modules look up when a test runs, bound to the project's code instead of stock's (or fakeredis's).
REBOUND: dict[tuple[str, str], Any] = {
    ("tests.basecase", "FakeServer"): LoopbackServer,
    ("tests.basecase", "FakeRedis"): real_redis,
    # The JSON tests, on the codec the patched scheduler reads and writes definitions with (stock's, plus solar).
    ("tests.test_json", "RedBeatJSONEncoder"): EntryEncoder,
    ("tests.test_json", "RedBeatJSONDecoder"): EntryDecoder,
}


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get(URL_VARIABLE, "").startswith("redis://"):
        raise pytest.UsageError(f"{URL_VARIABLE} must be the redis://host:port/db the upstream suite may flush")
    config.pluginmanager.register(Reach(os.environ.get(REACH_VARIABLE)), "bkm-upstream-reach")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Rebind the upstream fixtures' Redis, and check that the code under test is the installed, patched one."""
    import redbeat

    root = Path(str(session.config.rootpath)).resolve()
    if Path(redbeat.__file__).resolve().is_relative_to(root):
        raise pytest.UsageError(f"redbeat was imported from the sdist ({redbeat.__file__}), not the installed one")
    sdist = next(line for line in (root / "PKG-INFO").read_text().splitlines() if line.startswith("Version: "))
    if sdist.removeprefix("Version: ") != version("celery-redbeat"):
        raise pytest.UsageError(f"the suite is celery-redbeat {sdist}, the installed one {version('celery-redbeat')}")
    for (module_name, name), replacement in REBOUND.items():
        module = sys.modules.get(module_name)
        if module is None or not Path(str(module.__file__)).resolve().is_relative_to(root):
            raise pytest.UsageError(f"the upstream module {module_name} was not collected from {root}")
        if not hasattr(module, name):
            raise pytest.UsageError(f"{module_name} no longer binds {name}: the harness needs updating")
        setattr(module, name, replacement)
    HARNESS.add(sys.modules["tests.basecase"].RedBeatCase.setup.__code__)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    while SERVERS:
        SERVERS.pop().close()


class Reach:
    """Which modules of ``patches/redbeat`` each test ran code of, outside the set-up (``HARNESS``)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.reached: dict[str, list[str]] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        modules: set[str] = set()

        def profile(frame: FrameType, event: str, arg: Any) -> None:
            filename = frame.f_code.co_filename
            if event == "call" and filename.startswith(PATCHED_DIR) and not _called_from(frame, HARNESS):
                modules.add(Path(filename).stem)

        previous: Callable[..., Any] | None = sys.getprofile()
        sys.setprofile(profile)
        try:
            return (yield)
        finally:
            sys.setprofile(previous)
            self.reached[item.nodeid] = sorted(modules)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.path:
            Path(self.path).write_text(json.dumps(self.reached, indent=1, sort_keys=True), encoding="utf-8")


def _called_from(frame: FrameType, codes: set[CodeType]) -> bool:
    caller = frame.f_back
    while caller is not None:
        if caller.f_code in codes:
            return True
        caller = caller.f_back
    return False
