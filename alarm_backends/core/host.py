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
IPV6_ROUTE_TABLE = "/proc/net/ipv6_route"
IPV6_ADDRESSES = "/proc/net/if_inet6"
SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's IPv4 address
RTF_UP = 0x0001
RTF_REJECT = 0x0200  # the kernel's "unreachable" ::/0 route on lo, present on every host
IFA_SCOPE_GLOBAL = 0x00
# Not an address to register under: a temporary (privacy) one, which rotates; one still being checked for
# duplicates (tentative), found a duplicate, or on its way out.
IFA_UNUSABLE = 0x01 | 0x40 | 0x08 | 0x20  # IFA_F_TEMPORARY | IFA_F_TENTATIVE | IFA_F_DADFAILED | IFA_F_DEPRECATED
IFA_F_PERMANENT = 0x80


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


def ipv6_default_route_interface(route_table: str) -> str | None:
    """The interface of the IPv6 default route (``::/0``, up, not a reject route) in ``/proc/net/ipv6_route`` text,
    the lowest metric winning."""
    best: tuple[int, str] | None = None
    for line in route_table.splitlines():
        fields = line.split()
        if len(fields) != 10:
            continue
        destination, prefix, metric, flags, iface = fields[0], fields[1], fields[5], fields[8], fields[9]
        try:
            is_default = int(destination, 16) == 0 and int(prefix, 16) == 0
            rank, bits = int(metric, 16), int(flags, 16)
        except ValueError:
            continue
        if is_default and bits & RTF_UP and not bits & RTF_REJECT and (best is None or rank < best[0]):
            best = (rank, iface)
    return best[1] if best else None


def interface_ipv6_address(addresses: str, iface: str) -> str | None:
    """A global, stable IPv6 address of ``iface`` in ``/proc/net/if_inet6`` text: a permanent (configured) one before
    one the router advertised, the lowest of them. Every process of the host must pick the same one (the file's order
    is the kernel's hash order), and never a link-local one (it means nothing on another host) or a temporary one
    (it rotates)."""
    found: list[tuple[bool, ipaddress.IPv6Address]] = []
    for line in addresses.splitlines():
        fields = line.split()
        if len(fields) != 6 or fields[5] != iface:
            continue
        try:
            address = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
            scope, flags = int(fields[3], 16), int(fields[4], 16)
        except ValueError:
            continue
        if scope == IFA_SCOPE_GLOBAL and not flags & IFA_UNUSABLE:
            found.append((not flags & IFA_F_PERMANENT, address))
    return str(min(found)[1]) if found else None


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except OSError:
        return ""


def detect_host_addr() -> str:
    """As the original's ``get_host_addr``: the IPv4 default route's interface's address, else the IPv6 default
    route's interface's (global) address, else what the host name resolves to."""
    iface = default_route_interface(_read(ROUTE_TABLE))
    addr = interface_address(iface) if iface else None
    if addr:
        return addr
    iface = ipv6_default_route_interface(_read(IPV6_ROUTE_TABLE))
    addr = interface_ipv6_address(_read(IPV6_ADDRESSES), iface) if iface else None
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
