"""A bound on broker calls that carry none of their own.

py-amqp waits without a timeout for the broker's replies to ``channel.open``, ``confirm.select`` and
``connection.close``, and writes with ``sendall`` on a blocking socket. On a link that stalled (packets dropped by a
cut network, a frozen broker host) such a call holds the beat in its tick forever: no renewal, no stepping down, no
log line. :func:`bounded` arms a timer that shuts the connection's socket down when the call outlasts its bound; the
blocked read or write then returns with an error and the call raises, exactly as if the link had broken, so the
scheduler's usual failure path (nothing committed, republished next tick under the same ids) takes over.

The Redis transport needs none of this: its sockets carry ``socket_timeout`` (``publisher.open_producer``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any


class BrokerStalledError(Exception):
    """A broker call outlasted its bound; its connection was shut down."""


def _amqp_socket(connection: Any) -> socket.socket | None:
    """The py-amqp socket under a kombu connection, if it has one. Read without ``connection.connection``, which
    would open a connection that is not there."""
    raw = getattr(connection, "_connection", None)
    sock = getattr(raw, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


@contextlib.contextmanager
def bounded(connection: Any, seconds: float, what: str) -> Iterator[None]:
    """Run the body; if it has not finished after ``seconds``, shut ``connection``'s socket down (the body then
    raises :class:`BrokerStalledError`, naming ``what``)."""
    lock = threading.Lock()
    state = {"done": False, "fired": False}

    def expire() -> None:
        with lock:  # never after the body finished: a healthy connection is left alone
            if state["done"]:
                return
            sock = _amqp_socket(connection)
            if sock is None:
                return
            state["fired"] = True
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    except Exception as exc:
        if state["fired"]:
            message = f"{what}: no progress with the broker in {seconds:.0f}s, connection dropped"
            raise BrokerStalledError(message) from exc
        raise
    finally:
        with lock:
            state["done"] = True
        timer.cancel()
    if state["fired"]:
        # The body returned although its socket was shut (it had just finished): the connection is unusable.
        raise BrokerStalledError(f"{what}: finished as its {seconds:.0f}s bound ran out, connection dropped")
