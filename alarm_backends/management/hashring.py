"""The md5 hash ring that assigns targets (business ids) to hosts.

For nodes of weight 1 it places exactly the original's points and answers exactly the original's lookups: each node
gets ``max(65536 // total_weight, 1)`` points at ``md5(str(node) + str(i)) % 2**32``, and a key belongs to the node
of the first point at or after ``md5(str(key)) % 2**32``, wrapping past the end. Three bugs of the original are fixed:

* **Weights** now scale a node's point count (``multiple * weight`` points); the original gave every node the same
  count and then took the lookup index modulo ``multiple * total_weight``, which overruns the ring (IndexError) as
  soon as a weight is not 1.
* **Label collisions** (with ``separate_labels``, ``HASH_RING_SEPARATE_LABELS``): ``str(node) + str(i)`` is
  ambiguous — ``"10.0.0.1" + "10"`` and ``"10.0.0.11" + "0"`` are both ``"10.0.0.110"`` — so about 5 % of the
  points of two such hosts landed on one position and one host silently lost them. A label two nodes of the ring
  would share then stays plain for the node with the shortest name (the one ordering of the claimants that does not
  depend on how the node list was read) and becomes ``node + "#" + i`` for the others. Off by default: the fix moves
  business ids (4.4 % on 10.0.0.1/.2/.12), and while hosts of the original share the ring, hosts that disagree on
  an owner process a business twice or not at all; an operator turns it on once every host runs this ring. ``#``
  cannot occur in a plain label (node names may not contain it), so every label is unique. Labels change only where
  a collision exists in *this* ring: rings where no address is another one followed by digits keep the original's
  points and vectors exactly; rings with, say, 10.0.0.1 next to 10.0.0.10-19 or 10.0.0.100-199 (common in a /24)
  differ from the original in exactly those colliding points.
* **An empty ring** raises :class:`EmptyRingError` naming the problem, instead of ZeroDivisionError.

Two different labels can still hash to the same 32-bit position (md5 mod 2**32; roughly one pair per 65k points).
Such a position belongs to the node whose name sorts last — what the original did for nodes read in Consul's sorted
key order, but independent of the order the nodes are given in.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Hashable, Iterable, Mapping
from hashlib import md5

NUM_VNODES = 2**16
SEPARATOR = "#"


class EmptyRingError(ValueError):
    """The ring has no nodes, so no key has an owner."""


def as_weights(nodes: Mapping[str, int] | Iterable[str]) -> dict[str, int]:
    """``{node: weight}`` as given, or weight 1 for each node of a plain list (what Consul's registry gives)."""
    return dict(nodes) if isinstance(nodes, Mapping) else dict.fromkeys(nodes, 1)


def position(key: object) -> int:
    """Where a key (or a point label) sits on the ring: ``md5(str(key)) % 2**32``."""
    return int(md5(str(key).encode("utf-8")).hexdigest(), 16) % 2**32


def point_labels(nodes: Mapping[str, int], multiple: int, separate: bool = True) -> dict[str, list[str]]:
    """Every node's point labels, ``node + str(i)``; with ``separate``, except where another node of the ring claims
    the same string (see the module docstring)."""
    labels = {node: [f"{node}{i}" for i in range(multiple * weight)] for node, weight in nodes.items()}
    if not separate or not _may_collide(nodes):
        return labels
    claims: dict[str, list[str]] = {}
    for node, names in labels.items():
        for label in names:
            claims.setdefault(label, []).append(node)
    for label, claimants in claims.items():
        if len(claimants) < 2:
            continue
        keeper = min(claimants, key=lambda n: (len(n), n))
        for node in claimants:
            if node != keeper:
                # The label ends with str(i) for this node: recover i from the node name's length.
                i = label[len(node) :]
                labels[node][int(i)] = f"{node}{SEPARATOR}{i}"
    return labels


def _may_collide(nodes: Iterable[str]) -> bool:
    """Two labels can only be equal when one node name is another one followed by digits."""
    names = sorted(nodes)
    return any(b.startswith(a) and b[len(a) :].isdigit() for i, a in enumerate(names) for b in names[i + 1 :] if b != a)


class HashRing:
    """``HashRing({"10.0.0.1": 1, "10.0.0.2": 1})`` or ``HashRing(["10.0.0.1", "10.0.0.2"])`` (weight 1 each): the
    original's signature and ownership; ``separate_labels=True`` for the ring without label collisions."""

    def __init__(
        self, nodes: Mapping[str, int] | Iterable[str], num_vnodes: int = NUM_VNODES, separate_labels: bool = False
    ) -> None:
        weights = as_weights(nodes)
        if not weights:
            raise EmptyRingError("the hash ring has no nodes: no host is registered, so no target has an owner")
        for node, weight in weights.items():
            if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
                raise ValueError(f"hash ring node {node!r}: weight must be a positive integer, got {weight!r}")
            if SEPARATOR in str(node):
                raise ValueError(f"hash ring node {node!r}: a node name may not contain {SEPARATOR!r}")
        self.nodes: dict[str, int] = {str(node): weight for node, weight in weights.items()}
        self.num_vnodes = num_vnodes
        self.multiple = max(num_vnodes // sum(self.nodes.values()), 1)
        owner: dict[int, str] = {}
        self.separate_labels = separate_labels
        labels = point_labels(self.nodes, self.multiple, separate_labels)
        # Sorted, so a position two labels share goes to the node that sorts last whatever the input order (the
        # original's owner for hosts read in Consul's sorted key order).
        for node in sorted(labels):
            for label in labels[node]:
                owner[position(label)] = node
        self._owner = owner
        self.ring = sorted(owner)

    def get_node(self, key: Hashable) -> str:
        """The node owning ``key``: the first point at or after the key's position, wrapping past the end."""
        index = bisect_left(self.ring, position(key)) % len(self.ring)
        return self._owner[self.ring[index]]

    def points(self, node: str) -> int:
        """How many ring positions ``node`` owns."""
        return sum(1 for owner in self._owner.values() if owner == node)

    def __len__(self) -> int:
        return len(self.ring)

    def __repr__(self) -> str:
        kind = ", separate_labels=True" if self.separate_labels else ""
        return f"HashRing({self.nodes!r}{kind}, points={len(self.ring)})"
