"""The LOGGING dict (built after overrides, so ``BKAPP_SETTINGS_LOG_LEVEL`` and friends apply)."""

from __future__ import annotations

import os
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s %(message)s"


def build_logging(*, level: str, handlers: list[str], log_path: str, prefix: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"standard": {"format": FORMAT}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "standard"}},
        "root": {"level": level, "handlers": handlers},
        "loggers": {
            "cron": {"level": level, "handlers": handlers, "propagate": False},
            "celery": {"level": level, "handlers": handlers, "propagate": False},
        },
    }
    if "file" in handlers:
        # WatchedFileHandler reopens the file after logrotate moves it.
        config["handlers"]["file"] = {
            "class": "logging.handlers.WatchedFileHandler",
            "formatter": "standard",
            "filename": os.path.join(log_path, f"{prefix}kernel.log"),
        }
    return config
