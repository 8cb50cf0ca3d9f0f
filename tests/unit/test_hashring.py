"""The md5 ring: the original's vectors, and its three bugs (weights, label collisions, empty ring) fixed."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from hashlib import md5
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alarm_backends.management.hashring import NUM_VNODES, EmptyRingError, HashRing, point_labels, position

HOSTS = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def test_positions_are_md5_mod_2_32() -> None:
    assert position("10.0.0.10") == int(md5(b"10.0.0.10").hexdigest(), 16) % 2**32
    assert position(2) == position("2")


def test_the_original_vector() -> None:
    ring = HashRing(HOSTS)
    assert [ring.points(h) for h in HOSTS] == [21845, 21845, 21845]
    assert len(ring) == 65535
    assert {biz: ring.get_node(biz) for biz in (2, 3, 100, 5000)} == {
        2: "10.0.0.3",
        3: "10.0.0.2",
        100: "10.0.0.1",
        5000: "10.0.0.3",
    }


def original_lookup(nodes: list[str]) -> Callable[[object], str]:
    """The original algorithm, written out for unit weights (reference for the comparison below)."""
    multiple = max(NUM_VNODES // len(nodes), 1)
    hash2node: dict[int, str] = {}
    ring: list[int] = []
    for node in nodes:
        for i in range(multiple):
            h = position(f"{node}{i}")
            ring.append(h)
            hash2node[h] = node
    ring.sort()
    return lambda key: hash2node[ring[bisect_left(ring, position(key)) % (multiple * len(nodes))]]


def test_lookups_equal_the_original_for_unit_weights() -> None:
    nodes = ["10.0.1.7", "10.0.2.9", "192.168.0.4", "172.16.3.3"]
    ring, original = HashRing(nodes), original_lookup(nodes)
    for key in [*range(0, 3000, 7), "x", 10**9]:
        assert ring.get_node(key) == original(key)


def test_input_order_does_not_matter() -> None:
    a, b = HashRing(HOSTS), HashRing(list(reversed(HOSTS)))
    assert all(a.get_node(k) == b.get_node(k) for k in range(2000))


def test_five_hosts_share_5000_businesses_evenly() -> None:
    ring = HashRing([f"10.1.0.{i}" for i in range(1, 6)])
    counts = Counter(ring.get_node(biz) for biz in range(1, 5001))
    assert len(counts) == 5
    for host, count in counts.items():
        assert 0.15 * 5000 <= count <= 0.25 * 5000, (host, count)


def test_weights_scale_point_counts_without_index_error() -> None:
    # The original gave both nodes 21845 points and took indexes modulo 65535: IndexError past the ring's end.
    ring = HashRing({"a": 1, "b": 2})
    assert (ring.points("a"), ring.points("b")) == (21845, 43690)
    owners = Counter(ring.get_node(k) for k in range(6000))
    assert 0.25 < owners["a"] / 6000 < 0.42
    # A key past the last point wraps to the first point's owner.
    past_last = next(k for k in range(10**6) if position(k) > ring.ring[-1])
    assert ring.get_node(past_last) == ring._owner[ring.ring[0]]


def test_colliding_labels_get_distinct_points() -> None:
    # "10.0.0.1" + "10" == "10.0.0.11" + "0": in the original one of the two hosts lost every such point.
    labels = point_labels({"10.0.0.1": 1, "10.0.0.11": 1}, 32768, separate=True)
    assert labels["10.0.0.1"][10] == "10.0.0.110"
    assert labels["10.0.0.11"][0] == "10.0.0.11#0"
    assert labels["10.0.0.11"][5000] == "10.0.0.11#5000"  # "10.0.0.1" + "15000"
    assert labels["10.0.0.11"][30000] == "10.0.0.1130000"  # "10.0.0.1" has no point 130000: no collision
    flat = [label for names in labels.values() for label in names]
    assert len(flat) == len(set(flat)) == 65536
    ring = HashRing(["10.0.0.1", "10.0.0.11"], separate_labels=True)
    assert ring.points("10.0.0.1") + ring.points("10.0.0.11") == len(ring)
    assert min(ring.points("10.0.0.1"), ring.points("10.0.0.11")) > 32000


@pytest.mark.parametrize(
    "nodes",
    [["10.0.0.1", "10.0.0.2", "10.0.0.12"], [f"10.0.0.{i}" for i in range(1, 21)], ["10.0.0.1", "10.0.0.11"]],
)
def test_by_default_the_ring_owns_as_the_originals_does_collisions_included(nodes: list[str]) -> None:
    """Hosts of the original and of this platform share the ring in a rolling upgrade: by default every owner is
    the original's (its algorithm, written out above, with hosts in Consul's sorted key order), collisions too."""
    ring, original = HashRing(nodes), original_lookup(sorted(nodes))
    assert all(ring.get_node(biz) == original(biz) for biz in range(1, 5001))
    fixed = HashRing(nodes, separate_labels=True)
    moved = sum(fixed.get_node(biz) != original(biz) for biz in range(1, 5001))
    assert moved > 0  # these rings collide: the fix moves business ids, hence off by default


def test_labels_stay_plain_when_no_name_extends_another_with_digits() -> None:
    assert point_labels({"10.0.0.1": 1, "10.0.0.2": 1}, 3) == {
        "10.0.0.1": ["10.0.0.10", "10.0.0.11", "10.0.0.12"],
        "10.0.0.2": ["10.0.0.20", "10.0.0.21", "10.0.0.22"],
    }


def test_empty_ring_raises_a_clear_error() -> None:
    with pytest.raises(EmptyRingError, match="no nodes"):
        HashRing([])
    with pytest.raises(EmptyRingError):
        HashRing({})


@pytest.mark.parametrize("weights", [{"a": 0}, {"a": -1}, {"a": 1.5}, {"a": True}])
def test_bad_weights_are_refused(weights: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="'a': weight must be a positive integer"):
        HashRing(weights)


def test_separator_in_a_node_name_is_refused() -> None:
    with pytest.raises(ValueError, match="may not contain '#'"):
        HashRing(["a#1"])


octet = st.integers(min_value=0, max_value=255)
addresses = st.tuples(octet, octet, octet, octet).map(lambda t: ".".join(map(str, t)))
POINTS_PER_HOST = 64  # small rings keep the property check fast; the labelling is the same at any size


def extends_with_digits(a: str, b: str) -> bool:
    return b.startswith(a) and b[len(a) :].isdigit()


@settings(max_examples=60, deadline=None)
@given(hosts=st.lists(addresses, min_size=1, max_size=5, unique=True), new=addresses)
def test_adding_a_host_moves_keys_only_to_that_host(hosts: list[str], new: str) -> None:
    # With the same number of points per host before and after. (The default ring spreads a fixed 65536 points
    # over the hosts, as the original did, so a join also takes points away from the others; see the next test.)
    # When the new name is an existing one minus some trailing digits, the existing host's colliding labels take
    # the separator and move: the one case excluded.
    if new in hosts or any(extends_with_digits(new, h) for h in hosts):
        return
    before = HashRing(hosts, num_vnodes=POINTS_PER_HOST * len(hosts))
    after = HashRing([*hosts, new], num_vnodes=POINTS_PER_HOST * (len(hosts) + 1))
    for key in range(300):
        if after.get_node(key) != before.get_node(key):
            assert after.get_node(key) == new


def test_with_the_default_size_a_join_also_moves_some_keys_between_existing_hosts() -> None:
    # 65536 // 3 → 65536 // 4 points each: every old host loses its points 16384..21844, and the keys behind them
    # fall to the next surviving point, whoever owns it. Faithful to the original (its vectors need that count).
    before, after = HashRing(HOSTS), HashRing([*HOSTS, "10.0.0.4"])
    moved = [k for k in range(3000) if before.get_node(k) != after.get_node(k)]
    to_new = [k for k in moved if after.get_node(k) == "10.0.0.4"]
    assert 0.2 < len(to_new) / 3000 < 0.3
    assert 0 < len(moved) - len(to_new) < 0.2 * 3000
