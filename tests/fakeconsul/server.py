"""The fake Consul agent over HTTP: a threaded ``http.server`` on 127.0.0.1 in front of :class:`ConsulAPI`.

Every connection gets its own daemon thread, so a blocking query holds only its own connection. ``stop()`` stops
accepting, releases blocking queries, shuts down idle keep-alive connections and joins every thread it started.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakeconsul.api import ConsulAPI, Request, Response
from tests.fakeconsul.state import FakeConsulState

# How long stop() waits for connection threads to finish once their sockets are shut down.
_STOP_JOIN_TIMEOUT = 1.0


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as py-consul's requests.Session expects
    # Headers and body go out in separate writes; with Nagle on, the body would wait for the client's delayed ACK.
    disable_nagle_algorithm = True

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except ValueError as error:
            self.close_connection = True  # the stream is out of step with the framing now
            self._send(Response(400, f"Request body unreadable: {error}".encode(), "text/plain; charset=utf-8"))
            return
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=unquote(parts.path),
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        try:
            response = self.server.api.handle(request)
        except Exception as error:
            # A bug in the fake: answer as Consul answers an internal error (500, plain text), naming it, so the
            # test that hit it fails with the cause instead of a dropped connection.
            response = Response(500, f"fake consul internal error: {error!r}".encode(), "text/plain; charset=utf-8")
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_PUT = do_DELETE = do_POST = do_PATCH = do_HEAD = do_OPTIONS = _dispatch  # noqa: N815

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def version_string(self) -> str:
        return "FakeConsul"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests make thousands of requests


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: ConsulAPI) -> None:
        super().__init__(address, _Handler)
        self.api = api
        self._connections_lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}

    def process_request(self, request: Any, client_address: Any) -> None:
        # Like ThreadingMixIn, but remembering each connection so that stop() can shut it down and join its thread.
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), name="fakeconsul-conn", daemon=True
        )
        with self._connections_lock:
            self._connections[request] = thread
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except (OSError, ValueError):
            pass  # the client went away, or stop() shut the socket (or its file) under us
        finally:
            self.shutdown_request(request)
            with self._connections_lock:
                self._connections.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # connection errors are the client's business (and routine during stop())

    def close_connections(self, timeout: float) -> None:
        with self._connections_lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread waiting for the next keep-alive request
        deadline = time.monotonic() + timeout
        for _, thread in connections:
            thread.join(max(deadline - time.monotonic(), 0))


class FakeConsul:
    """A fake Consul agent (datacenter ``dc1``, one server node) serving the KV, session and agent/self APIs.

    ``acl_token``: when set, requests must carry it (``X-Consul-Token``, ``Authorization: Bearer`` or ``?token=``);
    without a token they are the anonymous token of a default-deny agent, a wrong one is "ACL not found".
    ``ttl_multiplier``: a TTL session expires ``TTL * ttl_multiplier`` after its last renewal (Consul: 2).
    ``clock``: the clock TTLs and lock-delays run on (blocking-query waits are always real time).
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        acl_token: str | None = None,
        ttl_multiplier: float = 2.0,
        node_name: str = "fake-consul",
        datacenter: str = "dc1",
        session_ttl_min: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self.acl_token = acl_token
        self.state = FakeConsulState(
            node_name=node_name,
            datacenter=datacenter,
            ttl_multiplier=ttl_multiplier,
            session_ttl_min=session_ttl_min,
            clock=clock,
        )
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> FakeConsul:
        if self._server is not None or self._threads:
            raise RuntimeError("a FakeConsul can be started only once")
        self._server = _Server((self.host, self.port), ConsulAPI(self.state, self.acl_token))
        self.port = self._server.server_address[1]
        self._threads = [
            threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fakeconsul-http", daemon=True
            ),
            threading.Thread(target=self.state.run_expiry, name="fakeconsul-expiry", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()  # no new connections
        self.state.close()  # in-flight blocking queries answer now; the expiry loop ends
        server.close_connections(_STOP_JOIN_TIMEOUT)
        server.server_close()
        for thread in self._threads:
            thread.join(_STOP_JOIN_TIMEOUT)

    def __enter__(self) -> FakeConsul:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
