"""A real beat process (``tests.integration.beatapp``) in its own process group, with its log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.processes import stop_group

REPO = Path(__file__).resolve().parents[2]


class Beat:
    def __init__(self, name: str, queue: str, tmp: Path, lock_timeout: float, **env: str) -> None:
        self.name = name
        self.log_path = tmp / f"{name}.log"
        full_env = os.environ | {
            "BEAT_TEST_QUEUE": queue,
            "BEAT_TEST_LOCK_TIMEOUT": str(lock_timeout),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        cmd = [sys.executable, "-m", "celery", "-A", "tests.integration.beatapp", "beat", "-S",
               "redbeat.RedBeatScheduler", "-l", "info", "-s", str(tmp / f"{name}.schedule")]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logged(self, text: str) -> bool:
        """Whether a log line contains ``text`` (polled: the test times events with its own clock)."""
        return text in self.log()

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        stop_group(self.proc, grace=20)
