"""Consul agent settings: address, HTTPS port, TLS files under ``$BK_HOME/cert/`` and the ACL token.

As the original: an IPv6 host is written in brackets (``[fd00::1]``), as a URL needs it; the TLS files are the ones
``BK_CONSUL_CA_FILE``, ``BK_CONSUL_CLIENT_CERT_FILE`` and ``BK_CONSUL_CLIENT_KEY_FILE`` name under ``$BK_HOME/cert``
(unset, the blueking installer's names: ``bkce-root.crt``, ``consul-client.pem``, ``consul-client-key.pem``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.tools.env import first, first_int, split_host_port

# Setting any of these says a Consul agent is part of the deployment; without them the platform runs single-node.
ENABLING_VARS = ("CONSUL_HOST", "BK_MONITOR_CONSUL_HOST", "CONSUL_HTTP_ADDR", "BK_CONSUL_HTTPS_PORT")


@dataclass(frozen=True)
class ConsulSettings:
    enabled: bool
    host: str
    port: int
    https_port: int | None
    ca_file: str
    cert_file: str
    key_file: str
    token: str

    @property
    def scheme(self) -> str:
        return "https" if self.https_port else "http"

    @property
    def address(self) -> str:
        return f"{self.scheme}://{self.host}:{self.https_port or self.port}"


# TLS files under $BK_HOME/cert: (variable naming the file, the installer's name when it is unset).
TLS_FILES = {
    "ca_file": ("BK_CONSUL_CA_FILE", "bkce-root.crt"),
    "cert_file": ("BK_CONSUL_CLIENT_CERT_FILE", "consul-client.pem"),
    "key_file": ("BK_CONSUL_CLIENT_KEY_FILE", "consul-client-key.pem"),
}


def url_host(host: str) -> str:
    """``host`` as a URL writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def get_consul_settings(environ: Mapping[str, str]) -> ConsulSettings:
    host = first(environ, "CONSUL_HOST", "BK_MONITOR_CONSUL_HOST", default="localhost")
    port = first_int(environ, "CONSUL_PORT", "BK_MONITOR_CONSUL_PORT", default=8500)
    https_port = first_int(environ, "BK_CONSUL_HTTPS_PORT", default=0) or None
    addr = environ.get("CONSUL_HTTP_ADDR", "")
    if addr and not environ.get("CONSUL_HOST") and not environ.get("BK_MONITOR_CONSUL_HOST"):
        # Consul's own variable, host:port (optionally with a scheme) — what its CLI and test agents export.
        scheme, _, hostport = addr.rpartition("://")
        host, raw_port = split_host_port(hostport)
        port = first_int({"CONSUL_HTTP_ADDR": raw_port}, "CONSUL_HTTP_ADDR", default=port)
        if scheme == "https" and not https_port:
            https_port = port
    cert_dir = os.path.join(environ.get("BK_HOME", "/data/bkce"), "cert")
    tls = {
        field: os.path.join(cert_dir, environ.get(var) or default) if https_port else ""
        for field, (var, default) in TLS_FILES.items()
    }
    return ConsulSettings(
        enabled=any(environ.get(name) for name in ENABLING_VARS),
        host=url_host(host),
        port=port,
        https_port=https_port,
        token=first(environ, "CONSUL_HTTP_TOKEN", "BK_CONSUL_ACL_TOKEN"),
        **tls,
    )


def uses_ring(conf: Any) -> bool:
    """Whether leadership comes from the Consul ring (settings ``CONSUL_ENABLED`` outside container mode): a
    container deployment runs one beat, and the Redis lock alone elects it."""
    return bool(conf.CONSUL_ENABLED and not conf.IS_CONTAINER_MODE)
