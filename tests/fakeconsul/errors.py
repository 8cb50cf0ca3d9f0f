"""The errors the fake agent answers with: an HTTP status and Consul's plain-text message."""

from __future__ import annotations


class ConsulError(Exception):
    """A request Consul would refuse: ``status`` is the HTTP status, ``message`` the plain-text body.

    Consul turns an RPC error into ``500`` with the error's text, and its HTTP layer answers malformed requests with
    ``400`` (``HTTPError``); both are plain text, not JSON.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ConsulError:
    return ConsulError(400, message)


def permission_denied(message: str = "Permission denied") -> ConsulError:
    return ConsulError(403, message)


def not_found(message: str) -> ConsulError:
    return ConsulError(404, message)


def server_error(message: str) -> ConsulError:
    return ConsulError(500, message)
