"""The pure side of ``manage.py healthz``: results, the report, the JSON form, the exit-code rule, and the runner's
bounds and scrubbing (with in-memory checks)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from alarm_backends.management.health.checks import Check, CheckOutcome, run_checks, scrub, url_password
from alarm_backends.management.health.status import (
    EXIT_FAIL,
    EXIT_OK,
    FAIL,
    OK,
    WARN,
    CheckResult,
    exit_code,
    report,
    to_json,
)

RESULTS = [
    CheckResult("redis log", OK, "redis log db 7 at 127.0.0.1:6379: PONG", 0.004),
    CheckResult("beat lock", WARN, "no beat holds redbeat::lock", 0.0123),
    CheckResult("broker", FAIL, "amqp: connection refused", 1.5, {"transport": "amqp"}),
]


def test_exit_code_fails_only_on_a_failed_check() -> None:
    assert exit_code([]) == EXIT_OK
    assert exit_code(RESULTS[:2]) == EXIT_OK  # a warning alone is healthy
    assert exit_code(RESULTS) == EXIT_FAIL == 1


def test_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="must be one of ok, warn, fail"):
        CheckResult("x", "bad", "")


def test_a_multi_line_detail_becomes_one_line() -> None:
    assert CheckResult("x", FAIL, "Error 111\n  connecting to\thost").detail == "Error 111 connecting to host"


def test_the_report_is_aligned_with_a_summary() -> None:
    lines = report(RESULTS).splitlines()
    assert lines[0].split() == ["CHECK", "STATUS", "TIME", "DETAIL"]
    rows = lines[1:4]
    assert [row.split()[0:2] for row in rows] == [["redis", "log"], ["beat", "lock"], ["broker", "FAIL"]]
    # Every status and every detail starts in the header's column; times are right-aligned milliseconds.
    assert {row.index(status) for row, status in zip(rows, ("OK", "WARN", "FAIL"), strict=True)} == {
        lines[0].index("STATUS")
    }
    detail_at = lines[0].index("DETAIL")
    assert [row[detail_at:] for row in rows] == [r.detail for r in RESULTS]
    assert [row[:detail_at].rstrip().rsplit(" ", 1)[-1] for row in rows] == ["4ms", "12ms", "1500ms"]
    assert lines[-2:] == ["", "FAIL: 1 ok, 1 warn, 1 fail"]
    assert report(RESULTS[:2]).splitlines()[-1] == "OK: 1 ok, 1 warn, 0 fail"


def test_the_json_form_is_a_list_of_objects() -> None:
    loaded = json.loads(to_json(RESULTS))
    assert [set(item) for item in loaded] == [{"name", "status", "detail", "seconds", "data"}] * 3
    assert loaded[2] == {
        "name": "broker",
        "status": "fail",
        "detail": "amqp: connection refused",
        "seconds": 1.5,
        "data": {"transport": "amqp"},
    }


def test_the_runner_bounds_a_hanging_check_and_reports_the_others() -> None:
    release = threading.Event()

    def hangs() -> CheckOutcome:
        release.wait(10)
        return OK, "late", {}

    def raises() -> CheckOutcome:
        raise ConnectionError("refused by redis://:hunter2@db:6379/0")

    started = time.monotonic()
    try:
        results = run_checks(
            [Check("hangs", hangs), Check("fine", lambda: (OK, "PONG", {})), Check("raises", raises)],
            timeout=0.3,
            secrets=["hunter2", ""],
        )
    finally:
        release.set()
    assert time.monotonic() - started < 2
    assert [(r.name, r.status) for r in results] == [("hangs", FAIL), ("fine", OK), ("raises", FAIL)]
    assert results[0].detail == "no answer within 0.3s"
    assert results[2].detail == "ConnectionError: refused by redis://:***@db:6379/0"


def test_scrub_and_url_password() -> None:
    assert scrub("a s3cret b", ["s3cret"]) == "a *** b"
    assert url_password("amqp://user:p%40ss@mq:5672/vhost") == "p%40ss"
    assert url_password("redis://127.0.0.1:6379/9") == ""
