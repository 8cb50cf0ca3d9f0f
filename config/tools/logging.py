"""The LOGGING dict (built after overrides, so ``BKAPP_SETTINGS_LOG_LEVEL`` and friends apply)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from typing import Any

from pythonjsonlogger.json import JsonFormatter

FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s %(message)s"
FORMATS = ("text", "json")


def zoned_time(record: logging.LogRecord) -> str:
    """``2026-12-03 16:07:41.467+08:00``: the local time (Django's TIME_ZONE) with its UTC offset. Without the
    offset a log line read beside a cron (UTC) or a beat decision line (``due …+00:00``) is eight hours off.

    What ``datetime.fromtimestamp(t).astimezone()`` prints, for less (1.9 against 2.7 µs a line here, and a worker
    writes four lines per run): the offset comes from ``localtime``, which follows the zone's DST rules, and each
    offset's tzinfo is made once."""
    offset = time.localtime(record.created).tm_gmtoff
    zone = _ZONES.get(offset)
    if zone is None:
        zone = _ZONES.setdefault(offset, dt.timezone(dt.timedelta(seconds=offset)))
    return dt.datetime.fromtimestamp(record.created, zone).isoformat(sep=" ", timespec="milliseconds")


_ZONES: dict[int, dt.timezone] = {}


class ZonedFormatter(logging.Formatter):
    """The text lines' formatter: ``%(asctime)s`` carries the UTC offset."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802  (logging's)
        return zoned_time(record)


class ZonedJsonFormatter(JsonFormatter):
    """JSON lines whose ``time`` carries the UTC offset (ISO 8601, as a collector parses it)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802  (logging's)
        return zoned_time(record)


def build_logging(*, level: str, handlers: list[str], log_path: str, prefix: str, fmt: str = "text") -> dict[str, Any]:
    """``fmt`` ``json`` writes JSON lines (python-json-logger) to the console; files keep the text format."""
    if fmt not in FORMATS:
        raise ValueError(f"LOG_FORMAT (BKAPP_LOG_FORMAT)={fmt!r} must be one of {', '.join(FORMATS)}")
    formatters: dict[str, Any] = {"standard": {"()": ZonedFormatter, "fmt": FORMAT}}
    if fmt == "json":
        formatters["json"] = {
            "()": ZonedJsonFormatter,
            # One JSON object per line for a container runtime's collector: the fields of FORMAT, named.
            "fmt": FORMAT,
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
        }
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": formatters,
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": fmt if fmt == "json" else "standard"}},
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
