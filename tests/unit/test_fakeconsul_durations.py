"""The fake Consul agent's Go-style durations (session TTLs, lock-delays, blocking-query waits)."""

from __future__ import annotations

import pytest

from tests.fakeconsul.durations import DurationError, format_duration, parse_duration

SECOND = 1_000_000_000


def test_go_durations_parse_and_format_like_go() -> None:
    parsed = {"15s": 15 * SECOND, "1m30s": 90 * SECOND, "500ms": SECOND // 2, "1.5h": 5400 * SECOND, "0": 0}
    assert {text: parse_duration(text) for text in parsed} == parsed
    assert parse_duration("-2us") == -2000
    for bad, message in [("", 'invalid duration ""'), ("10", "missing unit"), ("5d", 'unknown unit "d"')]:
        with pytest.raises(DurationError, match=message):
            parse_duration(bad)
    formatted = {0: "0s", 1500: "1.5µs", SECOND // 2: "500ms", 10 * SECOND: "10s", 90 * SECOND: "1m30s"}
    assert {n: format_duration(n) for n in formatted} == formatted
    assert format_duration(86400 * SECOND) == "24h0m0s"
