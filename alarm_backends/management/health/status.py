"""What ``manage.py healthz`` reports, without any I/O: one :class:`CheckResult` per dependency, the aligned report,
the JSON form and the exit-code rule. The checks themselves live in ``health_checks.py``.

Three statuses, as an operator reads them: ``ok``; ``warn`` — the platform runs but something needs a look (no beat
holds the lock, a queue is backing up); ``fail`` — a dependency is unusable. Only a ``fail`` makes the command exit
non-zero, so a probe or a deploy script is not tripped by a condition the platform rides out by itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

OK = "ok"
WARN = "warn"
FAIL = "fail"
STATUSES = (OK, WARN, FAIL)

EXIT_OK = 0
EXIT_FAIL = 1


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str
    detail: str  # one line: a newline would break the report's alignment
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)  # machine-readable extras, in --json only

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} must be one of {', '.join(STATUSES)}")
        # Exception texts can span lines (redis-py, kombu): keep the report one line per check.
        object.__setattr__(self, "detail", " ".join(self.detail.split()))


def exit_code(results: Sequence[CheckResult]) -> int:
    """0 when no check failed (warnings allowed), 1 otherwise."""
    return EXIT_FAIL if any(result.status == FAIL for result in results) else EXIT_OK


def summary(results: Sequence[CheckResult]) -> str:
    counts = {status: sum(result.status == status for result in results) for status in STATUSES}
    verdict = "FAIL" if counts[FAIL] else "OK"
    return f"{verdict}: {counts[OK]} ok, {counts[WARN]} warn, {counts[FAIL]} fail"


def report(results: Sequence[CheckResult]) -> str:
    """An aligned report: check, status, time, detail — then the summary line."""
    headers = ("CHECK", "STATUS", "TIME", "DETAIL")
    rows = [(r.name, r.status.upper(), f"{r.seconds * 1000:.0f}ms", r.detail) for r in results]
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(3)]
    lines = []
    for row in (headers, *rows):
        # TIME is right-aligned so the numbers line up.
        cells = (row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]), row[3])
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    lines.append(summary(results))
    return "\n".join(lines)


def to_json(results: Sequence[CheckResult]) -> str:
    """A list of ``{"name", "status", "detail", "seconds", "data"}`` objects."""
    return json.dumps([{**asdict(result), "seconds": round(result.seconds, 4)} for result in results], indent=2)
