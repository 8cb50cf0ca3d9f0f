"""RabbitMQ broker settings (``BK_MONITOR_RABBITMQ_*``) and the broker URL."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from config.tools.env import first_int


@dataclass(frozen=True)
class RabbitMQSettings:
    host: str
    port: int
    vhost: str
    username: str
    password: str

    def broker_url(self) -> str:
        # user, password and vhost are quoted: a vhost of "/" must travel as %2F.
        user = quote(self.username, safe="")
        password = quote(self.password, safe="")
        return f"amqp://{user}:{password}@{self.host}:{self.port}/{quote(self.vhost, safe='')}"


def get_rabbitmq_settings(environ: Mapping[str, str], *, app_code: str) -> RabbitMQSettings:
    return RabbitMQSettings(
        host=environ.get("BK_MONITOR_RABBITMQ_HOST") or "rabbitmq.service.consul",
        port=first_int(environ, "BK_MONITOR_RABBITMQ_PORT", default=5672),
        vhost=environ.get("BK_MONITOR_RABBITMQ_VHOST") or app_code,
        username=environ.get("BK_MONITOR_RABBITMQ_USERNAME") or app_code,
        password=environ.get("BK_MONITOR_RABBITMQ_PASSWORD", ""),
    )
