"""The Consul client, built from settings (``CONSUL_*``: host, port, HTTPS port, TLS files, ACL token).

Every call the platform makes goes through :func:`consul_call`, which turns a connection failure or an agent error
into one :class:`ConsulUnavailableError` naming the agent's address — what ``hash_ring`` prints and beat logs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import consul
import requests
from django.conf import settings

from config.tools.consul import ConsulSettings

T = TypeVar("T")


class ConsulUnavailableError(Exception):
    """The Consul agent could not be reached or refused the request."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"Consul agent at {address} is unavailable: {reason}")
        self.address = address
        self.reason = reason


def consul_settings(conf: Any = settings) -> ConsulSettings:
    """The agent to talk to, from the ``CONSUL_*`` settings (which ``BKAPP_SETTINGS_<NAME>`` can override)."""
    return ConsulSettings(
        enabled=bool(conf.CONSUL_ENABLED),
        host=conf.CONSUL_CLIENT_HOST,
        port=int(conf.CONSUL_CLIENT_PORT),
        https_port=int(conf.CONSUL_HTTPS_PORT or 0) or None,
        ca_file=conf.CONSUL_CLIENT_CA_FILE,
        cert_file=conf.CONSUL_CLIENT_CERT_FILE,
        key_file=conf.CONSUL_CLIENT_KEY_FILE,
        token=conf.CONSUL_ACL_TOKEN,
    )


def client_kwargs(agent: ConsulSettings, timeout: float) -> dict[str, Any]:
    """Keyword arguments for ``consul.Consul``: HTTPS with the CA and client certificate when an HTTPS port is
    configured, plain HTTP otherwise."""
    kwargs: dict[str, Any] = {
        "host": agent.host,
        "port": agent.https_port or agent.port,
        "scheme": agent.scheme,
        "token": agent.token or None,
        "connections_timeout": timeout,
    }
    if agent.https_port:
        kwargs["verify"] = agent.ca_file or True
        if agent.cert_file and agent.key_file:
            kwargs["cert"] = (agent.cert_file, agent.key_file)
    return kwargs


def get_consul(agent: ConsulSettings | None = None) -> consul.Consul:
    agent = agent or consul_settings()
    # Beat asks Consul from inside its tick: a hung agent must cost CONSUL_TIMEOUT seconds, not py-consul's 30.
    return consul.Consul(**client_kwargs(agent, float(settings.CONSUL_TIMEOUT)))


def consul_call(address: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)``; a failure to talk to the agent becomes :class:`ConsulUnavailableError`.

    ``consul.NotFound`` passes through: callers decide what a missing session or key means.
    """
    try:
        return func(*args, **kwargs)
    except consul.NotFound:
        raise
    except requests.RequestException as exc:
        raise ConsulUnavailableError(address, _reason(exc)) from exc
    except consul.ConsulException as exc:
        raise ConsulUnavailableError(address, f"{type(exc).__name__}: {exc}") from exc


def _reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or no route to the agent"
    if isinstance(exc, requests.Timeout):
        return "the agent did not answer in time"
    return f"{type(exc).__name__}: {exc}"
