"""What the overlap guard sends again, read back from a real (in-memory) broker: a takeover's retry keeps the
delivery's queue, overlap rule and deadline, and carries its try count; a buffered start has no deadline; a slot
whose run died holding the entry too often is given up."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from alarm_backends.service.scheduler.overlap import BUFFERED_HEADER, OVERLAP_HEADER, TAKEOVER_HEADER, guard
from alarm_backends.service.scheduler.overlap.lease import HELD, Decision

SLOT = "e@1795000000"
QUEUE = "bkm-test-resend"


@pytest.fixture
def app() -> Iterator[Celery]:
    made = Celery("resend", broker="memory://", set_as_current=False)
    made.conf.task_default_queue = "default-q"
    yield made
    made.close()


def sent(app: Celery) -> list[dict[str, Any]]:
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(QUEUE)
        messages = []
        while queue.qsize():
            message = queue.get(timeout=1)
            messages.append(dict(message.headers))
            message.ack()
        queue.close()
    return messages


def task_in(app: Celery, **headers: Any) -> Any:
    @app.task(name="t.job", shared=False)
    def job(*args: Any, **kwargs: Any) -> None: ...

    job.push_request(id=SLOT, args=[1], kwargs={"k": 2}, delivery_info={"routing_key": QUEUE}, **headers)
    return job


def test_a_takeover_retry_keeps_the_delivery_s_queue_rule_and_deadline(app: Celery) -> None:
    task = task_in(app, bkm_overlap="skip", bkm_deadline=1795000300.0, bkm_takeover=2)
    guard._wait_or_drop(task, "skip", SLOT, QUEUE, True, Decision(HELD, holder=SLOT, retry=2.5), 3.0)
    [headers] = sent(app)
    assert (headers["id"], headers[TAKEOVER_HEADER], headers[OVERLAP_HEADER], headers["bkm_deadline"]) == (
        SLOT, 3, "skip", 1795000300.0)  # fmt: skip
    assert headers["eta"] is not None and headers["expires"] is None and headers["argsrepr"] == "[1]"


def test_a_buffered_start_has_no_deadline(app: Celery) -> None:
    guard.start_buffered(task_in(app, bkm_deadline=1795000300.0), SLOT)
    [headers] = sent(app)
    assert headers[BUFFERED_HEADER] == 1 and "bkm_deadline" not in headers and headers["eta"] is None


def test_a_slot_whose_run_died_holding_the_entry_too_often_is_given_up(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    task = task_in(app, bkm_takeover=guard.MAX_TAKEOVERS)
    guard._wait_or_drop(task, "skip", SLOT, QUEUE, True, Decision(HELD, holder=SLOT, retry=2.5), 3.0)
    assert sent(app) == []
    assert f"{SLOT} given up: its run died holding the entry {guard.MAX_TAKEOVERS} times" in caplog.text
