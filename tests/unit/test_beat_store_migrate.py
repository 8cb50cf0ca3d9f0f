"""The migration's pure parts: which store a client writes to, and what the command prints."""

from __future__ import annotations

import redis
from redis.sentinel import Sentinel

from alarm_backends.management.commands.beat_store_migrate import report
from patches.redbeat.client import build_redis
from patches.redbeat.migrate import Copied, _server


def test_two_clients_of_one_store_are_one_store_and_others_are_not() -> None:
    # Built as the command builds them (no connection is made until a command).
    same = [build_redis("redis://:pw@10.0.0.1:6379/0"), redis.Redis(host="10.0.0.1", port=6379, db=0)]
    assert _server(same[0]) == _server(same[1])
    others = [
        build_redis("redis://10.0.0.1:6379/1"),
        build_redis("redis://10.0.0.2:6379/0"),
        build_redis("unix:///run/redis.sock?db=0"),
        Sentinel([("10.0.0.9", 26379)]).master_for("mymaster", db=0),
    ]
    assert len({_server(client) for client in [same[0], *others]}) == 5


def test_the_report_says_what_was_copied_kept_and_left_out() -> None:
    copied = Copied(entries=3, kept=2, orphans=[f"redbeat:x{i}" for i in range(7)], statics=2, run_now=1)
    text = report(copied, "redbeat:* in redis://r:6379/0", "{redbeat}:* in redis-cluster://c:7000/0", dry_run=False)
    assert text.splitlines() == [
        "copied 3 entries (2 static, 1 with a run-now request) from redbeat:* in redis://r:6379/0 to "
        "{redbeat}:* in redis-cluster://c:7000/0",
        "kept 2 entries the target held already (--merge)",
        "left out 7 index members with no entry hash: redbeat:x0, redbeat:x1, redbeat:x2, redbeat:x3, redbeat:x4 …",
        "start the beats on the new store now; stop those of the old one",
    ]
    assert report(Copied(entries=1), "a", "b", dry_run=True).startswith("would copy 1 entries")
