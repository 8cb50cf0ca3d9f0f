"""Go ``time.Duration`` parsing and formatting, as Consul applies them to TTLs, lock delays and ``?wait``.

Consul's messages embed Go's own texts (``time: invalid duration "x"``, ``24h0m0s``), so both directions follow
Go's ``time.ParseDuration`` and ``Duration.String`` rather than a looser Python parser.
"""

from __future__ import annotations

import json
from fractions import Fraction

NANOSECOND = 1
MICROSECOND = 1000 * NANOSECOND
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_MAX_DURATION = (1 << 63) - 1

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "µs": MICROSECOND,  # U+00B5 micro sign
    "μs": MICROSECOND,  # U+03BC Greek small letter mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}


class DurationError(ValueError):
    """Go's error text for a string ``time.ParseDuration`` rejects."""


def _quote(text: str) -> str:
    # Go's strconv.Quote: a double-quoted string with escapes; JSON's quoting agrees for printable text.
    return json.dumps(text, ensure_ascii=False)


def parse_duration(text: str) -> int:
    """Nanoseconds of a Go duration such as ``"15s"``, ``"1m30s"``, ``"500ms"`` or ``"0"``."""
    invalid = DurationError(f"time: invalid duration {_quote(text)}")
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = Fraction(0)
    while rest:
        if not (rest[0] == "." or rest[0] in "0123456789"):
            raise invalid
        whole_digits = _leading_digits(rest)
        rest = rest[len(whole_digits) :]
        frac_digits = ""
        if rest[:1] == ".":
            rest = rest[1:]
            frac_digits = _leading_digits(rest)
            rest = rest[len(frac_digits) :]
        if not whole_digits and not frac_digits:
            raise invalid
        unit_end = 0
        while unit_end < len(rest) and not (rest[unit_end] == "." or rest[unit_end] in "0123456789"):
            unit_end += 1
        if unit_end == 0:
            raise DurationError(f"time: missing unit in duration {_quote(text)}")
        unit = rest[:unit_end]
        rest = rest[unit_end:]
        if unit not in _UNITS:
            raise DurationError(f"time: unknown unit {_quote(unit)} in duration {_quote(text)}")
        number = Fraction(int(whole_digits or "0"))
        if frac_digits:
            number += Fraction(int(frac_digits), 10 ** len(frac_digits))
        total += number * _UNITS[unit]
        if total > _MAX_DURATION:
            raise invalid
    nanos = int(total)  # Go truncates the fractional nanoseconds
    return -nanos if negative else nanos


def _leading_digits(text: str) -> str:
    end = 0
    while end < len(text) and text[end] in "0123456789":
        end += 1
    return text[:end]


def _with_fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    width = len(str(unit)) - 1
    return f"{whole}.{str(frac).rjust(width, '0').rstrip('0')}"


def format_duration(nanos: int) -> str:
    """Go's ``Duration.String``: ``0s``, ``500ms``, ``1.5s``, ``1m30s``, ``24h0m0s``."""
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    u = abs(nanos)
    if u < MICROSECOND:
        return f"{sign}{u}ns"
    if u < MILLISECOND:
        return f"{sign}{_with_fraction(u, MICROSECOND)}µs"
    if u < SECOND:
        return f"{sign}{_with_fraction(u, MILLISECOND)}ms"
    minutes, rem = divmod(u, MINUTE)
    text = f"{_with_fraction(rem, SECOND)}s"
    if minutes:
        hours, minutes = divmod(minutes, 60)
        text = f"{minutes}m{text}"
        if hours:
            text = f"{hours}h{text}"
    return sign + text
