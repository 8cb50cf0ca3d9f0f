"""Loopback ports for the servers a test starts itself."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on: bound and released at once (another process could take it, which on a test
    machine's loopback is rare enough)."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])
