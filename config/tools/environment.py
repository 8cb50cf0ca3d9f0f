"""Where this process runs: role, environment, platform, deploy mode.

``DJANGO_CONF_MODULE`` has the form ``<anything>.<role>.<environment>.<platform>``, for example
``conf.worker.production.community``; the environment is one of ``development``, ``testing``,
``production`` and picks the settings module ``config.dev``, ``config.stag`` or ``config.prod``.

Unset, it is built as the original builds it: from ``BKAPP_DEPLOY_PLATFORM`` (or ``BKPAAS_ENGINE_REGION``) and
the environment of ``BK_ENV`` (PaaS V2, default development) or ``BKPAAS_ENVIRONMENT`` (V3: dev/stag/prod), for this
platform's one role, the worker. With none of them it is ``conf.worker.development.community`` (the original refused
to start); ``BKAPP_DEPLOY_PLATFORM`` is then the module's platform, as there.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

from config.tools.env import EnvError, first

DEFAULT_CONF_MODULE = "conf.worker.development.community"
ENVIRONMENTS = {"development": "dev", "testing": "stag", "production": "prod"}
PAAS_V3_ENVIRONMENTS = {new: old for old, new in ENVIRONMENTS.items()}


def conf_module(environ: Mapping[str, str]) -> str:
    """``DJANGO_CONF_MODULE``, or the one the original would build from the PaaS variables (see the docstring)."""
    given = environ.get("DJANGO_CONF_MODULE")
    if given:
        return given
    platform = first(environ, "BKAPP_DEPLOY_PLATFORM", "BKPAAS_ENGINE_REGION")
    if not platform:
        return DEFAULT_CONF_MODULE
    if "BKPAAS_ENVIRONMENT" in environ:
        raw = environ["BKPAAS_ENVIRONMENT"] or "dev"
        environment = PAAS_V3_ENVIRONMENTS.get(raw)
        if environment is None:
            raise EnvError(f"BKPAAS_ENVIRONMENT={raw!r} must be one of {', '.join(PAAS_V3_ENVIRONMENTS)}")
    else:
        environment = environ.get("BK_ENV") or "development"
    return f"conf.worker.{environment}.{platform}"


@dataclass(frozen=True)
class Environment:
    role: str
    environment: str  # development | testing | production
    new_env: str  # dev | stag | prod: the name of the config module
    platform: str
    is_container_mode: bool
    app_code: str
    conf_module: str  # DJANGO_CONF_MODULE, given or built


def parse_environment(environ: Mapping[str, str]) -> Environment:
    raw = conf_module(environ)
    parts = raw.split(".")
    if len(parts) != 4 or not all(parts):
        raise EnvError(f"DJANGO_CONF_MODULE={raw!r} must look like conf.<role>.<environment>.<platform>")
    _, role, environment, platform = parts
    if environment not in ENVIRONMENTS:
        raise EnvError(f"DJANGO_CONF_MODULE={raw!r}: environment must be one of {', '.join(ENVIRONMENTS)}")
    deploy_platform = first(environ, "BKAPP_DEPLOY_PLATFORM", "BKPAAS_ENGINE_REGION")
    if deploy_platform and deploy_platform != platform:
        # The original's warning: the module's platform wins.
        warnings.warn(f"DJANGO_CONF_MODULE[{raw}] sets platform {platform!r} but BKAPP_DEPLOY_PLATFORM is "
                      f"{deploy_platform!r}: using {platform!r}", stacklevel=2)  # fmt: skip
    return Environment(
        role=role,
        environment=environment,
        new_env=ENVIRONMENTS[environment],
        platform=platform,
        is_container_mode=environ.get("DEPLOY_MODE") == "kubernetes",
        app_code=first(environ, "APP_ID", "BKPAAS_APP_ID", "BK_MONITOR_APP_CODE", "APP_CODE", default="bkmonitorv3"),
        conf_module=raw,
    )


ENV = parse_environment(os.environ)
ROLE = ENV.role
ENVIRONMENT = ENV.environment
NEW_ENV = ENV.new_env
PLATFORM = ENV.platform
IS_CONTAINER_MODE = ENV.is_container_mode
APP_CODE = ENV.app_code
DJANGO_CONF_MODULE = ENV.conf_module
BKAPP_DEPLOY_PLATFORM = ENV.platform
