"""What ``.ci/first-run`` checks of a platform started by ``make run`` in a fresh venv (runtime dependencies only).

``python -m tests.e2e.first_run executed --since EPOCH --timeout S``
    waits until a scheduled job has *run on a worker*: a ``success`` entry newer than EPOCH in the cron run log (the
    log DB's stream, written by the worker when the job returns) — not merely a message beat published.
``python -m tests.e2e.first_run console --url URL --timeout S``
    waits until the operators' console answers its sign-in page (200) and refuses the schedule to a visitor who has
    not signed in (a redirect to the sign-in).
``python -m tests.e2e.first_run gone --marker TEXT``
    fails if any process whose command line contains TEXT (the first run's own directory) is still alive.

Only the runtime dependencies may be imported here: this runs with the fresh venv's interpreter, which has no
pytest and no dev extras, and that is the point.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def executed(since: float, timeout: float) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
    import django

    django.setup()
    import redis

    from alarm_backends.core.runlog import RunLogEntry, stream_key
    from alarm_backends.core.storage.redis import LOG, get_client

    client, stream = get_client(LOG), stream_key()
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        try:
            # Stream ids start with the entry's millisecond time: read only what was written since the start.
            entries = client.xrange(stream, min=f"{int(since * 1000)}-0")
        except redis.RedisError as exc:  # the platform's own redis-server may still be starting
            last_error, entries = f" (last error: {exc})", []
        runs = [RunLogEntry.from_fields(fields) for _, fields in entries or ()]
        done = [run for run in runs if run.status == "success"]
        if done:
            run = done[0]
            after = run.ts - since
            print(f"first run: {run.task} on {run.queue} succeeded in {run.cost:.3f}s, {after:.1f}s after start")
            return 0
        time.sleep(1)
    print(f"no job ran on a worker within {timeout:.0f}s of the start: {stream} holds no successful run{last_error}")
    return 1


def console(url: str, timeout: float) -> int:
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    deadline, last_error = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            with opener.open(url + "login/", timeout=5) as page:
                signed_out = page.status == 200 and b"Sign in" in page.read()
            try:
                opener.open(url, timeout=5)
                refused = False  # the schedule, without signing in
            except urllib.error.HTTPError as exc:
                refused = exc.code == 302 and exc.headers.get("Location", "").startswith("/login/")
            if signed_out and refused:
                print(f"first run: the console answers on {url} and asks to sign in")
                return 0
            last_error = f" (sign-in page {signed_out}, schedule refused {refused})"
        except (OSError, urllib.error.URLError) as exc:  # gunicorn may still be starting
            last_error = f" (last error: {exc})"
        time.sleep(1)
    print(f"the console did not answer as expected on {url} within {timeout:.0f}s{last_error}")
    return 1


def ancestors() -> set[int]:
    """This process and every process above it."""
    pids, pid = set(), os.getpid()
    while pid > 0 and pid not in pids:
        pids.add(pid)
        try:
            pid = int((Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[1])
        except OSError:
            break
    return pids


def gone(marker: str) -> int:
    """No live process of the run: ``marker`` in its command line or in its environment. The environment counts
    because a process may rewrite its title (redis-server shows ``<argv0> 127.0.0.1:<port>``, the run dir gone from
    it), while every process ``make run`` starts inherits the run's BKM_RUN_DIR."""
    left = []
    needle = marker.encode()
    mine = ancestors()  # this check and the script running it have the run's environment too
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue  # exited meanwhile, or another user's
        if (needle in raw or needle in environ) and state != "Z":
            cmdline = raw.replace(b"\0", b" ").decode(errors="replace").strip()
            left.append(f"{entry.name}: {cmdline}")
    for line in left:
        print(f"still running after make stop: {line}")
    return 1 if left else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    actions = parser.add_subparsers(dest="action", required=True)
    wait = actions.add_parser("executed", help="wait until a scheduled job has run on a worker")
    wait.add_argument("--since", type=float, required=True, help="epoch seconds the platform was started at")
    wait.add_argument("--timeout", type=float, default=180.0)
    web = actions.add_parser("console", help="the console answers and asks to sign in")
    web.add_argument("--url", required=True, help="the console's root URL")
    web.add_argument("--timeout", type=float, default=60.0)
    left = actions.add_parser("gone", help="no process of the run is left")
    left.add_argument("--marker", required=True, help="text every command line of the run contains")
    args = parser.parse_args()
    if args.action == "executed":
        return executed(args.since, args.timeout)
    return console(args.url, args.timeout) if args.action == "console" else gone(args.marker)


if __name__ == "__main__":
    sys.exit(main())
