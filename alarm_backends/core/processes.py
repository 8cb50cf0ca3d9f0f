"""Whether a process is still running, for the code that watches processes it did not start itself (supervisord's,
the metrics exporter's view of the programs)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True for a live process; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        # The state follows the parenthesised command name, which may itself contain ") ".
        return stat.read_text().rpartition(")")[2].split()[0] != "Z"
    return True
