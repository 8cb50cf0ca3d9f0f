"""Reading environment variables with errors that name the variable."""

from __future__ import annotations

from collections.abc import Mapping


class EnvError(ValueError):
    """An environment variable holds a value that cannot be used."""


def first(environ: Mapping[str, str], *names: str, default: str = "") -> str:
    """The value of the first of ``names`` that is set and non-empty, else ``default``."""
    for name in names:
        value = environ.get(name)
        if value:
            return value
    return default


def first_int(environ: Mapping[str, str], *names: str, default: int) -> int:
    """Like :func:`first`, parsed as an int; a bad value names the variable it came from."""
    for name in names:
        value = environ.get(name)
        if value:
            try:
                return int(value)
            except ValueError:
                raise EnvError(f"{name}={value!r} is not an integer") from None
    return default


def split_host_port(item: str) -> tuple[str, str]:
    """``host:port``, ``[v6]:port``, ``[v6]``, a bare ``v6`` address or ``host`` → (host, port or "")."""
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        return host, rest.removeprefix(":")
    if item.count(":") > 1:  # a bare IPv6 address: no port of its own
        return item, ""
    host, _, port = item.partition(":")
    return host, port
