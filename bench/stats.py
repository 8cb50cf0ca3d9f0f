"""Small statistics of the benchmark summaries (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100), the same definition as numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return None
    k = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def rnd(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def per(value: float | None, count: float | None, digits: int = 3) -> float | None:
    return None if value is None or not count else round(value / count, digits)
