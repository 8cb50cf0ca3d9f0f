"""A blocking query started in a thread, and the wait until the agent holds it, so a test changes the state after.

Against the fake, :meth:`FakeConsulState.waiting` says when the query on a path is parked. A real agent tells
nobody, so there the wait ends once the query's request has been written to the agent's socket: the agent may not
have parked it yet, but a change it sees first moves the index past the one the query names, and Consul then
answers at once with the change. The answer a test asserts is the same either way; only against the fake is it
certain that the change woke a parked query.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import consul
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from tests.fakeconsul.server import FakeConsul
from tests.integration.conftest import wait_for

# How long an agent on this machine may take to receive a request and park it.
PARK_TIMEOUT = 5.0


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``target`` in a thread; its result, or the exception it raised, ends up in the returned list."""
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(target())
        except Exception as exc:  # handed to the test, which decides whether it was expected
            results.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, results


class _SendWatcher:
    """Mixed in before one of urllib3's connection classes: sets ``sent`` once a request has been written."""

    sent: threading.Event

    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)  # type: ignore[misc]
        self.sent.set()


def watch_sends(client: consul.Consul) -> threading.Event:
    """An event set once ``client`` has written a whole request (line, headers and body) to its agent; the
    client is meant for the one query ``start_blocking`` sends."""
    sent = threading.Event()
    pools: dict[str, type[HTTPConnectionPool]] = {}
    for scheme, pool, connection in (
        ("http", HTTPConnectionPool, HTTPConnection),
        ("https", HTTPSConnectionPool, HTTPSConnection),
    ):
        watched = type(f"Watched{connection.__name__}", (_SendWatcher, connection), {"sent": sent})
        pools[scheme] = type(f"Watched{pool.__name__}", (pool,), {"ConnectionCls": watched})
    adapter = HTTPAdapter()
    # A dict of its own: the pool manager's default is urllib3's module-wide one.
    adapter.poolmanager.pool_classes_by_scheme = pools
    for scheme in pools:
        client.http.session.mount(f"{scheme}://", adapter)
    return sent


def start_blocking(
    client: consul.Consul, path: str, query: Callable[[consul.Consul], Any], fake: FakeConsul | None
) -> tuple[threading.Thread, list[Any]]:
    """Run ``query(client)``, a blocking query on ``path`` (``/v1/kv/<key>``, ``/v1/session/info/<id>``), in a
    thread; return once ``fake`` holds it parked, or, against a real agent (``fake`` None), once it was sent."""
    sent = watch_sends(client)
    thread, results = in_thread(lambda: query(client))
    if fake is not None:
        wait_for(lambda: fake.state.waiting(path) or results, PARK_TIMEOUT, f"the agent to hold the query on {path}")
    else:
        wait_for(lambda: sent.is_set() or results, PARK_TIMEOUT, f"the blocking query on {path} to be sent")
    assert not results, f"the blocking query on {path} answered before any change: {results}"
    return thread, results
