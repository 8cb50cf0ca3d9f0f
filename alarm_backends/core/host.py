"""This host's address on the ring: the one function registration, the leader check, ``hash_ring`` and the
system checks all use.

The original registered under the address of the default-gateway interface but checked leadership with the address
a UDP socket "connected" to 8.8.8.8 would use; on hosts with several interfaces the two differed and the leader
check looked for a host that was never registered. Here both go through :func:`get_host_addr`.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import socket
import struct
from functools import cache

from django.conf import settings

logger = logging.getLogger(__name__)

ROUTE_TABLE = "/proc/net/route"
SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's IPv4 address


def default_route_interface(route_table: str) -> str | None:
    """The interface of the IPv4 default route in ``/proc/net/route`` text, the lowest metric winning."""
    best: tuple[int, str] | None = None
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        iface, destination, flags, metric, mask = fields[0], fields[1], fields[3], fields[6], fields[7]
        try:
            up = int(flags, 16) & 0x1
            is_default = int(destination, 16) == 0 and int(mask, 16) == 0
            rank = int(metric)
        except ValueError:
            continue
        if up and is_default and (best is None or rank < best[0]):
            best = (rank, iface)
    return best[1] if best else None


def interface_address(iface: str) -> str | None:
    """The IPv4 address of a network interface, or None when it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", iface[:15].encode()))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def detect_host_addr() -> str:
    """The default-route interface's IPv4 address, else what the host name resolves to."""
    try:
        with open(ROUTE_TABLE, encoding="ascii") as f:
            iface = default_route_interface(f.read())
    except OSError:
        iface = None
    if iface:
        addr = interface_address(iface)
        if addr:
            return addr
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError as exc:
        logger.warning("cannot resolve this host's name (%s); using 127.0.0.1 as its address", exc)
        return "127.0.0.1"


@cache
def _detected() -> str:
    return detect_host_addr()


def get_host_addr() -> str:
    """``settings.HOST_ADDR`` when set (hosts whose routing picks the wrong interface, or several platform instances
    on one machine), else the detected address."""
    configured = str(getattr(settings, "HOST_ADDR", "") or "").strip()
    if configured:
        try:
            ipaddress.ip_address(configured)
        except ValueError:
            raise ValueError(f"HOST_ADDR={configured!r} is not an IP address") from None
        return configured
    return _detected()
