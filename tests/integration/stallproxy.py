"""A TCP relay on loopback whose directions can be held, to stall a link the way a cut network does: the bytes of a
held direction are neither delivered nor refused (the relay stops reading them, so the sender's buffers fill up)."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.net import LOOPBACK

RECEIVE_BUFFER = 128 * 1024


class StallProxy:
    """Relays each client connection to ``127.0.0.1:port``. ``replies`` held: the server's bytes wait in the relay;
    ``requests`` held: the relay stops reading the client, whose writes block once the socket buffers are full."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.replies = threading.Event()  # set: flowing; cleared: held
        self.requests = threading.Event()
        self.resume()
        # A fixed, small receive buffer (set before listen, so accepted sockets inherit it and their window scale
        # fits it): with the kernel's autotuning a held relay could take in up to tcp_rmem's maximum (32 MiB here),
        # so whether a held link ever blocks the sender would depend on the machine.
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.server.bind((LOOPBACK, 0))
        self.server.listen()
        self.port = int(self.server.getsockname()[1])
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self, requests: bool = False) -> None:
        """Stall the link: the server's replies, and with ``requests`` the client's bytes too."""
        self.replies.clear()
        if requests:
            self.requests.clear()

    def resume(self) -> None:
        self.replies.set()
        self.requests.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection((LOOPBACK, self.upstream))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, self.requests), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.replies), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, flowing: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while True:
                flowing.wait()  # held: nothing more is read from the source
                data = source.recv(65536)
                if not data:
                    break
                flowing.wait()
                sink.sendall(data)
        for sock in (source, sink):  # one side closed or failed: the relay closes the other
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.resume()
        self.server.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()
