"""``manage.py healthz -d [-i SECONDS]``: the original's self-monitoring daemon (its supervisord program
``healthz_daemon``: ``manage.py healthz -d -i 600``).

Every interval the host that leads runs every check and logs what it found (logger ``self_monitor``, as the
original): one INFO line per cycle, and an ERROR line naming each failed check, for the log pipeline to alert on.
The other hosts log that they do nothing. After a day of cycles it exits, as the original did, and supervisord
starts it again; SIGTERM or SIGINT ends it between two checks. The original also sent its problems through the
platform's notification API (``HEALTHZ_ALARM_CONFIG``), which this platform does not have: its ERROR line carries
them instead.

Unlike the original, a Consul it cannot read does not stop the daemon (the original's leader check raised and the
loop exited): the checks run anyway, the ``consul`` row among them failing, since a report from two hosts beats none.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from alarm_backends.core.consul_client import ConsulUnavailableError
from alarm_backends.management.health.status import FAIL, CheckResult

logger = logging.getLogger("self_monitor")

DAY = 24 * 3600


def cycles_per_day(interval: float) -> int:
    """How many cycles the daemon runs before it exits (the original's ``int(86400 / interval)``, at least one)."""
    return max(int(DAY / interval), 1)


@dataclass
class DaemonLoop:
    interval: float
    check: Callable[[], Sequence[CheckResult]]
    leads: Callable[[], bool]
    stop: threading.Event
    cycles: int

    def run(self) -> int:
        """Run until ``stop`` is set or ``cycles`` checks were made; returns how many were made."""
        made = 0
        while not self.stop.is_set() and made < self.cycles:
            started = time.monotonic()
            if self._leads():
                self._report(self.check(), time.monotonic() - started)
                made += 1  # counted on the leader only, as the original's cycles were
            else:
                logger.info("healthz: this host does not lead: nothing checked")
            if made < self.cycles:
                self.stop.wait(max(self.interval - (time.monotonic() - started), 0.0))
        return made

    def _leads(self) -> bool:
        try:
            return self.leads()
        except ConsulUnavailableError as exc:
            logger.warning("healthz: cannot tell which host leads (%s): checking anyway", exc)
            return True

    @staticmethod
    def _report(results: Sequence[CheckResult], seconds: float) -> None:
        failed = [r for r in results if r.status == FAIL]
        logger.info("healthz: check done in %.1fs, found %d problem(s)", seconds, len(failed))
        if failed:
            logger.error("healthz: %d problem(s): %s", len(failed), "; ".join(f"{r.name}: {r.detail}" for r in failed))
