"""Consul agent settings: address, HTTPS port, TLS files under ``$BK_HOME/cert/`` and the ACL token."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.tools.env import first, first_int

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


def get_consul_settings(environ: Mapping[str, str]) -> ConsulSettings:
    host = first(environ, "CONSUL_HOST", "BK_MONITOR_CONSUL_HOST", default="localhost")
    port = first_int(environ, "CONSUL_PORT", "BK_MONITOR_CONSUL_PORT", default=8500)
    https_port = first_int(environ, "BK_CONSUL_HTTPS_PORT", default=0) or None
    addr = environ.get("CONSUL_HTTP_ADDR", "")
    if addr and not environ.get("CONSUL_HOST") and not environ.get("BK_MONITOR_CONSUL_HOST"):
        # Consul's own variable, host:port (optionally with a scheme) — what its CLI and test agents export.
        scheme, _, hostport = addr.rpartition("://")
        host, _, raw_port = hostport.partition(":")
        port = first_int({"CONSUL_HTTP_ADDR": raw_port}, "CONSUL_HTTP_ADDR", default=port)
        if scheme == "https" and not https_port:
            https_port = port
    cert_dir = os.path.join(environ.get("BK_HOME", "/data/bkce"), "cert")
    return ConsulSettings(
        enabled=any(environ.get(name) for name in ENABLING_VARS),
        host=host,
        port=port,
        https_port=https_port,
        ca_file=os.path.join(cert_dir, "bkce-root.crt") if https_port else "",
        cert_file=os.path.join(cert_dir, "consul-client.pem") if https_port else "",
        key_file=os.path.join(cert_dir, "consul-client-key.pem") if https_port else "",
        token=first(environ, "CONSUL_HTTP_TOKEN", "BK_CONSUL_ACL_TOKEN"),
    )


def uses_ring(conf: Any) -> bool:
    """Whether leadership comes from the Consul ring (settings ``CONSUL_ENABLED`` outside container mode): a
    container deployment runs one beat, and the Redis lock alone elects it."""
    return bool(conf.CONSUL_ENABLED and not conf.IS_CONTAINER_MODE)
