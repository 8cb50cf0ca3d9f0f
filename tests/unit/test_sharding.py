"""``perform_sharding_task``, the original's fan-out helper, on a real Celery task (eager: no broker)."""

from __future__ import annotations

import pytest
from celery import Celery

from alarm_backends.service.scheduler.tasks import perform_sharding_task


@pytest.fixture
def shard_task() -> tuple[object, list[list[int]]]:
    app = Celery("sharding-test", set_as_current=False)
    app.conf.task_always_eager = True
    received: list[list[int]] = []

    @app.task(shared=False)
    def shard(targets: list[int]) -> None:
        received.append(targets)

    return shard, received


@pytest.mark.parametrize(
    ("count", "per_task", "chunks"),
    [
        (25, 10, [10, 10, 5]),
        (3, 10, [3]),
        (7, 1, [1] * 7),
        # The original's loop ran len // n + 1 times: 20 targets sent [10, 10, 0] and no targets [0]. Fixed: no
        # empty chunk is sent.
        (20, 10, [10, 10]),
        (0, 10, []),
    ],
)
def test_targets_go_out_in_order_in_chunks_of_num_per_task(
    shard_task: tuple[object, list[list[int]]], count: int, per_task: int, chunks: list[int]
) -> None:
    task, received = shard_task
    targets = tuple(range(count))  # any sequence: each chunk is sent as a list
    assert perform_sharding_task(targets, task, num_per_task=per_task) == len(chunks)
    assert [len(chunk) for chunk in received] == chunks
    assert [t for chunk in received for t in chunk] == list(targets)
    assert all(isinstance(chunk, list) for chunk in received)


def test_a_chunk_size_below_one_is_refused(shard_task: tuple[object, list[list[int]]]) -> None:
    with pytest.raises(ValueError, match="num_per_task=0"):
        perform_sharding_task([1], shard_task[0], num_per_task=0)
