"""The ``consul_agent`` pytest fixture: a real agent when ``TEST_CONSUL_HTTP_ADDR`` names one, else a fake.

Import it into a test module or conftest with ``from tests.fakeconsul.fixture import consul_agent  # noqa: F401``.
``TEST_CONSUL_HTTP_ADDR`` is ``host:port`` or ``scheme://host:port``; ``TEST_CONSUL_HTTP_TOKEN``, if set, is the
ACL token the clients of a real agent use.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import consul
import pytest

from tests.fakeconsul.server import FakeConsul
from tests.gate import skip_or_fail


@dataclass(frozen=True)
class ConsulAgent:
    host: str
    port: int
    is_fake: bool
    scheme: str = "http"
    token: str | None = None
    fake: FakeConsul | None = None  # the fake itself (for its state), when is_fake

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def client(self, **kwargs: Any) -> consul.Consul:
        """A py-consul client for this agent; ``kwargs`` go to ``consul.Consul`` (e.g. ``token``, ``dc``)."""
        kwargs.setdefault("token", self.token)
        return consul.Consul(host=self.host, port=self.port, scheme=self.scheme, **kwargs)


def parse_address(address: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of ``host:port`` or ``scheme://host:port``."""
    parts = urlsplit(address if "://" in address else f"http://{address}")
    if not parts.hostname or parts.port is None:
        raise ValueError(f"not a host:port or scheme://host:port address: {address!r}")
    return parts.scheme or "http", parts.hostname, parts.port


@pytest.fixture(scope="session")
def consul_agent() -> Iterator[ConsulAgent]:
    address = os.environ.get("TEST_CONSUL_HTTP_ADDR", "").strip()
    if address:
        scheme, host, port = parse_address(address)
        yield ConsulAgent(host, port, False, scheme, os.environ.get("TEST_CONSUL_HTTP_TOKEN") or None)
        return
    with FakeConsul() as fake:
        yield ConsulAgent(fake.host, fake.port, True, fake=fake)


@contextlib.contextmanager
def private_ring(agent: ConsulAgent, **settings: Any) -> Iterator[dict[str, Any]]:
    """Django settings that point the platform at ``agent`` under an APP_CODE nobody else uses (so its keys live
    under a prefix of their own), plus ``settings``; afterwards that prefix's sessions and keys are removed."""
    if agent.scheme != "http":
        # TEST_CONSUL_HTTP_ADDR named an agent these tests cannot use: under the gate, a setup to fix, not a skip.
        skip_or_fail(f"the agent at {agent.url} is not plain HTTP; these tests pass no TLS files")
    from django.test import override_settings

    app_code = f"bkmtest{uuid.uuid4().hex[:10]}"
    overrides: dict[str, Any] = {
        "CONSUL_ENABLED": True,
        "CONSUL_CLIENT_HOST": agent.host,
        "CONSUL_CLIENT_PORT": agent.port,
        "CONSUL_ACL_TOKEN": agent.token or "",
        "CONSUL_SESSION_TTL": 10,  # Consul's minimum
        "APP_CODE": app_code,
        **settings,
    }
    try:
        with override_settings(**overrides):
            yield overrides
    finally:
        client = agent.client()
        for session in client.session.list()[1]:
            if str(session.get("Name", "")).startswith(app_code):
                client.session.destroy(session["ID"])
        client.kv.delete(app_code, recurse=True)
