"""LOGGING: text on hosts, JSON lines on the console in container mode (or with BKAPP_LOG_FORMAT=json)."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import logging.config
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from config.tools.logging import build_logging

REPO = Path(__file__).resolve().parents[2]


def emit(fmt: str) -> str:
    config = build_logging(level="INFO", handlers=["console"], log_path="/nonexistent", prefix="", fmt=fmt)
    stream = io.StringIO()
    config["handlers"]["console"]["stream"] = stream
    logging.config.dictConfig(config)
    try:
        logging.getLogger("cron").info("^[Cron Task](%s) start", "job")
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    return stream.getvalue()


def test_json_lines_carry_the_text_formats_fields_by_name() -> None:
    record = json.loads(emit("json"))
    assert record["message"] == "^[Cron Task](job) start"
    assert (record["level"], record["logger"], record["pid"]) == ("INFO", "cron", os.getpid())
    assert record["time"]


def test_text_is_the_default_format() -> None:
    line = emit("text")
    assert line.rstrip().endswith(f"INFO {os.getpid()} cron ^[Cron Task](job) start")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_timestamp_carries_its_utc_offset(fmt: str) -> None:
    """Log lines were in Django's TIME_ZONE (Asia/Shanghai) without a word while crons run in UTC."""
    before = dt.datetime.now(dt.UTC)
    line = emit(fmt)
    stamp = json.loads(line)["time"] if fmt == "json" else " ".join(line.split()[:2])
    logged = dt.datetime.fromisoformat(stamp)
    assert logged.utcoffset() is not None and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d", stamp)
    assert abs((logged - before).total_seconds()) < 5


def test_an_unknown_format_names_the_setting() -> None:
    with pytest.raises(ValueError, match=r"LOG_FORMAT \(BKAPP_LOG_FORMAT\)='xml' must be one of text, json"):
        build_logging(level="INFO", handlers=["console"], log_path="/tmp", prefix="", fmt="xml")


def test_container_mode_logs_json_lines() -> None:
    env = os.environ | {"DEPLOY_MODE": "kubernetes"}
    env.pop("BKAPP_LOG_FORMAT", None)
    code = "import logging; logging.getLogger('cron').warning('from a container')"
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stderr.splitlines() if "from a container" in line]
    assert json.loads(line)["message"] == "from a container"


def test_a_bad_log_format_stops_start_up_with_one_line() -> None:
    env = os.environ | {"BKAPP_LOG_FORMAT": "xml"}
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert (done.returncode, done.stderr) == (
        2,
        """bkmonitor: BKAPP_LOG_FORMAT='xml': expected "text" or "json" (LOG_FORMAT)\n""",
    )


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/New_York", "Europe/Berlin", "UTC", "Australia/Lord_Howe"])
def test_zoned_time_prints_what_astimezone_prints_across_dst(zone: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python's own ``fromtimestamp(t).astimezone()`` is the oracle, in zones with and without DST (Lord Howe's
    is half an hour), on each side of their 2026 transitions and at instants across the year."""
    import datetime as dt
    import logging
    import time

    from config.tools.logging import zoned_time

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        instants = [1774746000.0 + hours * 3600 + 0.4567 for hours in range(-3, 4)]  # around 2026-03-29 01:00 UTC
        instants += [1792890000.0 + hours * 3600 for hours in range(-3, 4)]  # around 2026-10-25 01:00 UTC
        instants += [1767225600.0 + days * 86400 * 7 + 123.999 for days in range(53)]  # every week of 2026
        for instant in instants:
            record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
            record.created = instant
            expected = dt.datetime.fromtimestamp(instant).astimezone().isoformat(sep=" ", timespec="milliseconds")
            assert zoned_time(record) == expected, (zone, instant)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
