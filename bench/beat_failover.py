"""Failover: two beats on one schedule store; a fault on the lock holder; how soon and how cleanly the other takes over.

Beats A and B run the same app and schedule (``--entries`` interval entries every ``--interval`` s, lock timeout
``--lock-timeout``, max loop interval ``--max-interval``); only the lock holder dispatches. A consumer thread records
every message with the publishing pid and publish time the app stamps into its headers, and the slot it serves (from a
``<name>@<due>`` task id, else from the entry being dispatched).

``--fault kill`` sends SIGKILL, ``--fault stop`` SIGSTOP for ``--stop-seconds`` then SIGCONT. ``--phase sleep`` faults
the holder half an interval after a dispatch round started (it is asleep); ``--phase dispatch`` makes the holder
fault itself at its next publish (the app's ``BENCH_FAULT_FILE``): after it loaded its due entries, before it
finished publishing them and recording them as run.

Reported over [fault - ``--pre``, fault end + ``--post``]: ``failover_s`` (fault to the other beat's first dispatch),
``duplicates`` (extra dispatches of one (entry, slot); ``duplicate_task_ids`` of those carry the same task id, so a
worker can drop them), ``stale_dispatches`` (duplicates by the faulted beat after SIGCONT), ``missed_slots`` (per
entry, sum of round(gap / interval) - 1 over gaps between its dispatches), ``max_gap_s``, ``leader_changes`` (the
publishing pid changes); and ``leader_changes_before_fault`` while both beats were healthy, which should be 0.
Prints one JSON line.

Usage: ``python bench/beat_failover.py [--variant stock|patched] [--fault kill|stop] [--phase sleep|dispatch]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common, stats


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", "-n", type=int, default=20)
    parser.add_argument("--interval", type=float, default=2.0, help="entry period (s)")
    parser.add_argument("--lock-timeout", type=float, default=5.0, help="redbeat_lock_timeout (s)")
    parser.add_argument("--max-interval", type=float, default=1.0, help="beat_max_loop_interval (s)")
    parser.add_argument("--fault", choices=("kill", "stop"), default="kill")
    parser.add_argument("--phase", choices=("sleep", "dispatch"), default="sleep")
    parser.add_argument("--stop-seconds", type=float, default=8.0, help="SIGSTOP length (s), above the lock timeout")
    parser.add_argument("--warmup", type=float, default=6.0, help="two-beat steady state before the fault (s)")
    parser.add_argument("--pre", type=float, default=6.0, help="analysis window starts this long before the fault")
    parser.add_argument("--post", type=float, default=12.0, help="run and analyse this long after the fault ends")
    common.add_common_args(parser)
    return parser


def wait_for(predicate: Any, timeout: float, step: float = 0.005) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := predicate():
            return value
        time.sleep(step)
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = {
        "BENCH_SCHEDULE": json.dumps({"count": args.entries, "kind": "interval", "interval": args.interval}),
        "BENCH_STAMP_DUE": "1",
        "BENCH_MAX_INTERVAL": args.max_interval,
        "BENCH_LOCK_TIMEOUT": args.lock_timeout,
    }
    sig = signal.SIGKILL if args.fault == "kill" else signal.SIGSTOP
    msgs: list[dict[str, Any]] = []
    stop = threading.Event()

    def listen() -> None:
        conn = common.amqp_connection(args.broker)
        while not stop.is_set():  # consume() gives up after two minutes; go on until told
            common.consume(conn, ctx.queue, msgs, stop.is_set, idle=None)
        conn.release()

    with common.Run(args, "failover") as ctx:
        summary = ctx.base_summary("beat_failover")
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        a = ctx.beat("beatA", {**env, "BENCH_FAULT_FILE": ctx.dir / "beatA.fault"})
        b = ctx.beat("beatB", {**env, "BENCH_FAULT_FILE": ctx.dir / "beatB.fault"})
        try:
            summary["scheduler_class"] = a.start().wait_ready(60)["scheduler_class"]
            if not wait_for(lambda: any(m["pid"] == a.pid for m in msgs), 3 * args.interval + 30):
                raise RuntimeError(f"beat A never dispatched; see {a.log_path}")
            t_steady = b.start().wait_ready(60, first_tick=False)["ready_ts"]
            time.sleep(args.warmup)
            holder = max(msgs, key=lambda m: m["pub_ts"] or 0)["pid"]
            held, other = (a, b) if holder == a.pid else (b, a)
            t_fault = fault(args, held, msgs, sig)
            if args.fault == "stop":
                common.sleep_until(t_fault + args.stop_seconds)
                os.kill(held.pid, signal.SIGCONT)
            t_end = time.time() if args.fault == "stop" else t_fault
            time.sleep(args.post)
            summary.update(holder_alive_at_end=held.alive(), other_alive_at_end=other.alive())
        finally:
            for beat in (a, b):
                beat.stop()
            stop.set()
            listener.join(10)
    summary.update({k: getattr(args, k) for k in ("entries", "interval", "lock_timeout", "max_interval", "fault")})
    summary.update(phase=args.phase, stop_seconds=args.stop_seconds if args.fault == "stop" else None)
    summary.update(analyse(msgs, t_fault, t_end, args, held.pid, other.pid))
    summary["leader_changes_before_fault"] = leader_changes(msgs, t_steady, t_fault)
    return summary


def fault(args: argparse.Namespace, held: common.Beat, msgs: list[dict[str, Any]], sig: signal.Signals) -> float:
    """Fault the holder in the chosen phase; -> the time the fault took effect."""
    if args.phase == "dispatch":
        Path(held.env["BENCH_FAULT_FILE"]).write_text(sig.name)
        if not wait_for(lambda: held.marks("fault"), 3 * args.interval + 10):
            raise RuntimeError("the holder never published after the fault was armed")
        return float(held.marks("fault")[0][0])
    # A round starts when the holder publishes more than half an interval after its previous message.
    last = max(m["pub_ts"] for m in msgs if m["pid"] == held.pid)
    start = wait_for(
        lambda: next((m["pub_ts"] for m in msgs if m["pid"] == held.pid and m["pub_ts"] > last + args.interval / 2), 0),
        3 * args.interval + 10,
    )
    if not start:
        raise RuntimeError("no new dispatch round from the holder")
    common.sleep_until(start + args.interval / 2)
    os.kill(held.pid, sig)
    return time.time()


def leader_changes(msgs: list[dict[str, Any]], start: float, end: float) -> int:
    """How often the publishing pid changes between consecutive messages published in [start, end]."""
    pids = [m["pid"] for m in sorted(msgs, key=lambda m: m["pub_ts"] or 0) if start <= (m["pub_ts"] or 0) <= end]
    return sum(1 for a, b in pairwise(pids) if a != b)


def analyse(
    msgs: list[dict[str, Any]], t_fault: float, t_end: float, args: argparse.Namespace, holder: int, other: int
) -> dict[str, Any]:
    window = [m for m in msgs if m["pub_ts"] is not None and t_fault - args.pre <= m["pub_ts"] <= t_end + args.post]
    by_slot: dict[tuple[str, float | None], list[dict[str, Any]]] = defaultdict(list)
    for m in sorted(window, key=lambda m: m["pub_ts"]):
        by_slot[(m["name"], m["due_ts"])].append(m)
    extra = [m for ms in by_slot.values() for m in ms[1:]]
    stale = [m for m in extra if m["pid"] == holder and m["pub_ts"] > t_end]
    same_id = [m for ms in by_slot.values() for m in ms[1:] if m["id"] == ms[0]["id"]]
    firsts: dict[str, list[float]] = defaultdict(list)
    for (name, _), ms in by_slot.items():
        firsts[name].append(ms[0]["pub_ts"])
    gaps = [b - a for ts in firsts.values() for a, b in pairwise(sorted(ts))]
    takeover = [m["pub_ts"] for m in msgs if m["pid"] == other and m["pub_ts"] and m["pub_ts"] > t_fault]
    by_pid: dict[str, int] = defaultdict(int)
    for m in window:
        by_pid["holder" if m["pid"] == holder else "other"] += 1
    return {
        "t_fault": round(t_fault, 3),
        "failover_s": stats.rnd(min(takeover) - t_fault if takeover else None),
        "dispatches": len(window),
        "dispatches_by": dict(by_pid),
        "duplicates": len(extra),
        "duplicate_task_ids": len(same_id),
        "stale_dispatches": len(stale),
        "leader_changes": leader_changes(window, t_fault - args.pre, t_end + args.post),
        "missed_slots": sum(max(0, round(g / args.interval) - 1) for g in gaps),
        "max_gap_s": stats.rnd(max(gaps) if gaps else None),
    }


def main() -> None:
    common.script_main(build_parser, run)


if __name__ == "__main__":
    main()
