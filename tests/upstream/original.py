"""The original's Celery stack in a virtualenv of its own, for the rolling-upgrade test (tests/upgrade).

``python -m tests.upstream.original`` (run by ``make install-dev``) creates ``.cache/original-venv`` (git-ignored)
with the versions the original's hosts run — its pins, not this project's — so a stock beat and a stock worker of
the original can share a store and a broker with this platform's. Nothing of this project is installed there.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".cache" / "original-venv"
# The original's pins (its pyproject.toml): the scheduler and the worker as its hosts run them.
PINS = ("celery==5.4.0", "celery-redbeat==2.2.0", "kombu==5.5.3", "redis==4.6.0")
# Written last, with the pins it was built from: a venv without it (an interrupted build) or with other pins is rebuilt.
MARKER = VENV / ".pins"


def python() -> Path:
    return VENV / "bin" / "python"


def ready() -> bool:
    try:
        return MARKER.read_text(encoding="utf-8").split() == list(PINS) and python().is_file()
    except OSError:
        return False


def ensure() -> Path:
    """The original venv's interpreter, the venv built first if it is missing or has other pins."""
    if ready():
        return python()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(python()), "-m", "pip", "install", "--quiet", *PINS], check=True)
    MARKER.write_text(" ".join(PINS) + "\n", encoding="utf-8")
    return python()


if __name__ == "__main__":
    print(f"the original's stack ({', '.join(PINS)}): {ensure()}")
