"""This host's address as the original's ``get_host_addr`` finds it: the IPv4 default route's interface, else the
IPv6 default route's interface (a global address: a link-local one is meaningless on another host). The parsers
read the kernel's /proc/net tables; the vectors are taken from a real host, and on this machine the result is
checked against iproute2's own view (``ip -json``)."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from pathlib import Path

from alarm_backends.core.host import (
    IPV6_ADDRESSES,
    IPV6_ROUTE_TABLE,
    interface_ipv6_address,
    ipv6_default_route_interface,
)
from tests.gate import skip_or_fail

# /proc/net/ipv6_route of a host whose IPv6 default route goes through eth0 (gateway fd00::1, metric 1024); the last
# line is the kernel's reject route for ::/0 on lo (metric ffffffff, flags RTF_REJECT), on every host.
ROUTES = """\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
"""  # noqa: E501
# /proc/net/if_inet6 of the same host: lo's ::1 (scope host), eth0's fd00::2 (global, permanent, nodad) and its
# link-local address.
ADDRESSES = """\
00000000000000000000000000000001 01 80 10 80       lo
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
fd000000000000000000000000000002 04 40 00 82     eth0
"""


def test_the_default_route_is_the_up_one_with_the_lowest_metric_never_the_reject_route() -> None:
    assert ipv6_default_route_interface(ROUTES) == "eth0"
    second = ROUTES.splitlines()[2].replace("00000400", "00000064").replace("eth0", "eth1")
    assert ipv6_default_route_interface(ROUTES + second + "\n") == "eth1"  # metric 100 beats 1024
    down = ROUTES.splitlines()[2].replace("00000003     eth0", "00000002     eth0")  # RTF_UP cleared
    assert ipv6_default_route_interface(down) is None
    assert ipv6_default_route_interface(ROUTES.splitlines()[-1]) is None  # only the reject route: no IPv6 uplink
    assert ipv6_default_route_interface("") is None


def test_a_stable_address_is_chosen_the_same_whatever_the_files_order() -> None:
    # A router-advertised address (no IFA_F_PERMANENT) and its temporary privacy twin (IFA_F_TEMPORARY), then two
    # configured ones: the lowest configured one, in any order of the lines.
    lines = [
        "20010db8000000000000000000000009 04 40 00 00     eth0",  # advertised (SLAAC)
        "20010db800000000a1b2c3d4e5f60718 04 40 00 01     eth0",  # temporary: rotates
        "20010db8000000000000000000000007 04 40 00 80     eth0",  # permanent
        "20010db8000000000000000000000003 04 40 00 80     eth0",  # permanent, lowest
    ]
    for order in (lines, lines[::-1], lines[1:] + lines[:1]):
        assert interface_ipv6_address("\n".join(order), "eth0") == "2001:db8::3"
    assert interface_ipv6_address("\n".join(lines[:2]), "eth0") == "2001:db8::9"  # no configured one
    assert interface_ipv6_address(lines[1], "eth0") is None  # a temporary one only


def test_the_address_is_the_interfaces_first_usable_global_one() -> None:
    assert interface_ipv6_address(ADDRESSES, "eth0") == "fd00::2"  # not the link-local fe80::fc:ff:fe00:1
    assert interface_ipv6_address(ADDRESSES, "lo") is None  # ::1 is host scope
    assert interface_ipv6_address(ADDRESSES, "eth9") is None
    tentative = "20010db8000000000000000000000005 04 40 00 c0     eth0\n"  # IFA_F_TENTATIVE: not yet usable
    assert interface_ipv6_address(tentative + ADDRESSES, "eth0") == "fd00::2"
    assert interface_ipv6_address("20010db8000000000000000000000005 04 40 00 80     eth0", "eth0") == "2001:db8::5"


def ip_json(*args: str) -> list[dict]:
    return json.loads(subprocess.run(["ip", "-json", "-6", *args], capture_output=True, text=True, check=True,
                                     timeout=10).stdout or "[]")  # fmt: skip


def test_this_hosts_tables_read_as_iproute2_reads_them() -> None:
    if not (Path(IPV6_ROUTE_TABLE).exists() and shutil.which("ip")):
        skip_or_fail("needs Linux's /proc/net/ipv6_route and iproute2's `ip`")
    defaults = [r for r in ip_json("route", "show", "default") if r.get("dev") and r.get("type") != "unreachable"]
    iface = ipv6_default_route_interface(Path(IPV6_ROUTE_TABLE).read_text())
    if not defaults:
        assert iface is None
        return
    best = min(defaults, key=lambda route: route.get("metric", 0))
    assert iface is not None and iface == best["dev"]
    # iproute2 marks an address that is not IFA_F_PERMANENT "dynamic"; the same choice: configured first, lowest.
    usable = sorted((bool(a.get("dynamic")), ipaddress.IPv6Address(a["local"]))
                    for link in ip_json("addr", "show", "dev", iface, "scope", "global")
                    for a in link.get("addr_info", []) if a.get("local") and not any(
                        a.get(flag) for flag in ("tentative", "dadfailed", "deprecated", "temporary")))  # fmt: skip
    expected = str(usable[0][1]) if usable else None
    assert interface_ipv6_address(Path(IPV6_ADDRESSES).read_text(), iface) == expected
