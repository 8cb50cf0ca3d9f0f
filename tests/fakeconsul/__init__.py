"""An in-process fake Consul agent for the test-suite (there is no Consul binary here).

It speaks the slice of Consul's HTTP API the platform uses — ``agent/self``, sessions (create, renew, destroy,
info, list, node; TTLs, behaviors, lock-delay) and KV (get/list/keys, put with cas/acquire/release, delete, blocking
queries) — with Consul's semantics, so py-consul behaves against it as against a real agent.
"""

from tests.fakeconsul.server import FakeConsul
from tests.fakeconsul.state import FakeConsulState

__all__ = ["FakeConsul", "FakeConsulState"]
