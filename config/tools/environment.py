"""Where this process runs: role, environment, platform, deploy mode.

``DJANGO_CONF_MODULE`` has the form ``conf.<role>.<environment>.<platform>``, for example
``conf.worker.production.community``; the environment is one of ``development``, ``testing``,
``production`` and picks the settings module ``config.dev``, ``config.stag`` or ``config.prod``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from config.tools.env import EnvError, first

DEFAULT_CONF_MODULE = "conf.worker.development.community"
ENVIRONMENTS = {"development": "dev", "testing": "stag", "production": "prod"}


@dataclass(frozen=True)
class Environment:
    role: str
    environment: str  # development | testing | production
    new_env: str  # dev | stag | prod: the name of the config module
    platform: str
    is_container_mode: bool
    app_code: str

    @property
    def conf_module(self) -> str:
        return f"conf.{self.role}.{self.environment}.{self.platform}"


def parse_environment(environ: Mapping[str, str]) -> Environment:
    raw = environ.get("DJANGO_CONF_MODULE") or DEFAULT_CONF_MODULE
    parts = raw.split(".")
    if len(parts) != 4 or parts[0] != "conf" or not all(parts):
        raise EnvError(f"DJANGO_CONF_MODULE={raw!r} must look like conf.<role>.<environment>.<platform>")
    _, role, environment, platform = parts
    if environment not in ENVIRONMENTS:
        raise EnvError(f"DJANGO_CONF_MODULE={raw!r}: environment must be one of {', '.join(ENVIRONMENTS)}")
    return Environment(
        role=role,
        environment=environment,
        new_env=ENVIRONMENTS[environment],
        platform=platform,
        is_container_mode=environ.get("DEPLOY_MODE") == "kubernetes",
        app_code=first(environ, "APP_ID", "BKPAAS_APP_ID", "BK_MONITOR_APP_CODE", "APP_CODE", default="bkmonitorv3"),
    )


ENV = parse_environment(os.environ)
ROLE = ENV.role
ENVIRONMENT = ENV.environment
NEW_ENV = ENV.new_env
PLATFORM = ENV.platform
IS_CONTAINER_MODE = ENV.is_container_mode
APP_CODE = ENV.app_code
DJANGO_CONF_MODULE = ENV.conf_module
