"""``patches.redbeat.dispatch.ChunkPipeline`` against a fake publisher: the order of sends, confirms and the commit,
what is committed, and that every run sent is reported exactly once on each way a tick can end."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

import pytest

from patches.redbeat.dispatch import Chunk, ChunkPipeline, Committed
from patches.redbeat.observe import PlannedRun, SentRun
from patches.redbeat.publisher import LeaseExpiredError, Template
from patches.redbeat.store import LostLockError, Update

NOW = 1_700_000_000.0


def template(task: str) -> Template:
    return Template(task=task, serializer="json", payload=b"[]", content_type="application/json",
                    content_encoding="utf-8", headers={}, properties={}, exchange="", routing_key="q", declare=[],
                    delivery_mode=2, expires=None)  # fmt: skip


def chunk(number: int, runs: int = 2) -> Chunk:
    """Chunk ``number``: ``runs`` runs of entry e<number> (ids e<number>@0, @1, …) and one update for it."""
    messages = [(template(f"t{number}"), PlannedRun(f"e{number}", f"e{number}@{i}", float(i))) for i in range(runs)]
    return Chunk(messages, [Update(f"redbeat:e{number}", 60.0 * number, f"meta{number}")])


class FakePublisher:
    """``BatchPublisher``'s contract: ``send`` asks ``still_valid`` before each message and raises LeaseExpiredError
    with the count sent; marks count messages; ``confirm`` may be told to fail for a mark."""

    def __init__(self, events: list[str], fail_confirm: int | None = None) -> None:
        self.events = events
        self.fail_confirm = fail_confirm
        self.sent = 0

    def send(
        self, messages: Iterable[tuple[Template, str]], now: float, still_valid: Callable[[], bool] | None = None
    ) -> int:
        assert now == NOW
        ids: list[str] = []
        for _, task_id in messages:
            if still_valid is not None and not still_valid():
                self.events.append(f"send {','.join(ids)} (lease ran out)")
                raise LeaseExpiredError(len(ids))
            ids.append(task_id)
            self.sent += 1
        self.events.append(f"send {','.join(ids)}")
        return self.sent

    def confirm(self, mark: int) -> None:
        if mark == self.fail_confirm:
            self.events.append(f"confirm {mark} failed")
            raise OSError("the broker refused 1 message(s)")
        self.events.append(f"confirm {mark}")


class Harness:
    def __init__(self, fail_confirm: int | None = None, lease_messages: int | None = None,
                 lose_lock_before: int | None = None, commit_error: Exception | None = None) -> None:  # fmt: skip
        self.events: list[str] = []
        self.publisher = FakePublisher(self.events, fail_confirm)
        self.reported: list[tuple[str, str]] = []  # (task id, "committed" or the reason it was not)
        self.lease_messages = lease_messages
        self.lose_lock_before = lose_lock_before
        self.commit_error = commit_error
        self.pulled = 0
        self.closed = 0

    def chunks(self, count: int) -> Iterator[Chunk]:
        for number in range(1, count + 1):
            self.pulled = number
            yield chunk(number)

    def keep_lease(self) -> None:
        if self.pulled == self.lose_lock_before:
            raise LostLockError("redbeat::lock")

    def lease_valid(self) -> bool:
        return self.lease_messages is None or self.publisher.sent < self.lease_messages

    def commit(self, updates: list[Update]) -> int:
        self.events.append("commit " + ",".join(u.key.removeprefix("redbeat:") for u in updates))
        if self.commit_error is not None:
            raise self.commit_error
        return len(updates)

    def committed(self, sent: list[SentRun]) -> None:
        self.reported += [(one.run.id, "committed") for one in sent]

    def uncommitted(self, sent: list[SentRun], why: str) -> None:
        self.reported += [(one.run.id, why) for one in sent]

    def run(self, count: int, chunks: Iterable[Chunk] | None = None) -> Committed:
        """Run ``count`` chunks (chunk(1), chunk(2), …, planned lazily) or the ``chunks`` given."""
        pipeline = ChunkPipeline(publisher=lambda: self.publisher, keep_lease=self.keep_lease,
                                 lease_valid=self.lease_valid, clock=lambda: NOW + 0.5, commit=self.commit,
                                 publish_failed=self.close, reporter=self)  # fmt: skip
        return pipeline.run(self.chunks(count) if chunks is None else chunks, NOW, count)

    def close(self) -> None:
        self.closed += 1


def ids(*numbers: int) -> list[str]:
    return [f"e{n}@{i}" for n in numbers for i in range(2)]


def test_each_chunk_is_confirmed_after_the_next_is_sent_and_all_committed_at_once() -> None:
    h = Harness()
    done = h.run(3)
    assert h.events == ["send e1@0,e1@1", "send e2@0,e2@1", "confirm 2", "send e3@0,e3@1", "confirm 4", "confirm 6",
                        "commit e1,e2,e3"]  # fmt: skip
    assert [u.key for u in done.updates] == ["redbeat:e1", "redbeat:e2", "redbeat:e3"]
    assert [(one.run.id, one.task, one.at) for one in done.runs][:2] == [("e1@0", "t1", NOW + 0.5),
                                                                         ("e1@1", "t1", NOW + 0.5)]  # fmt: skip
    assert h.reported == [(i, "committed") for i in ids(1, 2, 3)] and h.closed == 0


def test_a_chunk_with_nothing_to_send_is_committed_without_a_send() -> None:
    h = Harness()
    done = h.run(1, [Chunk([], [Update("redbeat:paused", 120.0, "")])])
    # Mark 0: nothing to wait for (BatchPublisher.confirm returns at once).
    assert h.events == ["confirm 0", "commit paused"] and done.runs == [] and [u.score for u in done.updates] == [120.0]


def test_a_failed_confirm_commits_the_chunks_before_it_and_reports_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(fail_confirm=4)
    with caplog.at_level(logging.ERROR, logger="celery.beat"):
        done = h.run(3)
    assert h.events == ["send e1@0,e1@1", "send e2@0,e2@1", "confirm 2", "send e3@0,e3@1", "confirm 4 failed",
                        "commit e1"]  # fmt: skip
    assert [u.key for u in done.updates] == ["redbeat:e1"] and h.closed == 1
    assert h.reported == [(i, "publishing failed") for i in ids(2, 3)] + [(i, "committed") for i in ids(1)]
    assert "publishing failed, 2 entries will be retried: OSError: the broker refused 1 message(s)" in caplog.text


def test_a_lease_that_runs_out_mid_chunk_stops_the_tick_and_commits_what_was_confirmed() -> None:
    h = Harness(lease_messages=3)  # the lease covers chunk 1 and the first message of chunk 2
    done = h.run(3)
    assert h.events == ["send e1@0,e1@1", "send e2@0 (lease ran out)", "confirm 2", "commit e1"]
    assert h.pulled == 2  # chunk 3 was never planned
    assert h.reported == [("e2@0", "paused past the lease")] + [(i, "committed") for i in ids(1)]
    assert [u.key for u in done.updates] == ["redbeat:e1"] and h.closed == 0


def test_a_lost_lock_commits_nothing_and_reports_every_run_sent() -> None:
    h = Harness(lose_lock_before=3)
    with pytest.raises(LostLockError):
        h.run(3)
    assert h.events == ["send e1@0,e1@1", "send e2@0,e2@1", "confirm 2"]  # no commit
    assert h.reported == [(i, "this beat lost the lock") for i in ids(1, 2)]


def test_a_failed_commit_reports_every_run_uncommitted_and_raises() -> None:
    h = Harness(commit_error=LostLockError("redbeat::lock"))
    with pytest.raises(LostLockError):
        h.run(2)
    assert h.events[-1] == "commit e1,e2"
    assert h.reported == [(i, "the commit failed: redbeat::lock") for i in ids(1, 2)]


def test_a_send_that_fails_commits_nothing_and_drops_the_connection() -> None:
    class Broken(FakePublisher):
        def send(self, *args: object, **kwargs: object) -> int:
            raise ConnectionResetError("broker gone")

    h = Harness()
    h.publisher = Broken(h.events)
    done = h.run(2)
    assert done == Committed([], []) and h.events == [] and h.reported == [] and h.closed == 1
    assert h.pulled == 1
