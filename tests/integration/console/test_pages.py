"""The operators' console through Django's test client, on the real schedule store a real scheduler synced: sign-in
required, search and filters, an entry's recent runs from the run log, and the controls — refused (403, nothing
written) to anonymous and read-only users and to a POST without the CSRF token, done for an operator, acted on by
the leader and written to the audit trail. A store that cannot be reached is named on the page."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.test import Client, override_settings
from kombu import Consumer, Exchange, Producer, Queue

from alarm_backends.console.models import AuditEntry
from alarm_backends.core import runlog
from alarm_backends.core.storage.redis import LOG, get_client
from alarm_backends.jobs.queue_depth import queue_names
from patches.redbeat.schedulers import RedBeatScheduler
from tests.conftest import RABBITMQ_HOST, RABBITMQ_PORT
from tests.integration.beat_schedule.helpers import ENTRIES, QUEUE, make_due
from tests.integration.console.conftest import csrf_token, signed_in
from tests.integration.redbeat_helpers import ids, store
from tests.net import free_port

pytestmark = pytest.mark.redis


def paused(name: str) -> bool:
    return store().hget(f"redbeat:{name}", "paused") is not None


def test_nothing_is_readable_without_signing_in(leader: RedBeatScheduler) -> None:
    anonymous = Client()
    for url in ("/", "/entry/minutely"):
        response = anonymous.get(url)
        assert response.status_code == 302 and response["Location"] == f"/login/?next={url}"
    login = anonymous.get("/login/")
    assert login.status_code == 200 and b"Sign in" in login.content
    assert anonymous.post("/action/pause/minutely").status_code == 403
    assert not paused("minutely") and AuditEntry.objects.count() == 0


def test_the_schedule_page_lists_searches_and_filters(leader: RedBeatScheduler) -> None:
    reader = signed_in("reader")
    page = reader.get("/").content.decode()
    assert all(f'data-entry="{name}"' in page for name in ENTRIES)
    # The leader: this process's scheduler, named by the lock's value.
    assert f"a beat leads (host {socket.gethostname()}, pid {os.getpid()}; lock redbeat::lock" in page
    assert "(read-only)" in page
    hourly = reader.get("/", {"q": "HOUR"}).content.decode()
    assert 'data-entry="hourly"' in hourly and 'data-entry="minutely"' not in hourly
    on_queue = reader.get("/", {"queue": QUEUE}).content.decode()
    assert re.findall(r'data-entry="([^"]+)"', on_queue) == ["minutely"]


def test_a_read_only_user_is_refused_the_controls(leader: RedBeatScheduler) -> None:
    reader = signed_in("reader")
    entry = reader.get("/entry/minutely")
    assert entry.status_code == 200 and b"Pause</button>" not in entry.content
    # Even with a valid CSRF token (the sign-out form's), a control is refused and nothing is written.
    token = csrf_token(entry)
    for action in ("pause", "run"):
        assert reader.post(f"/action/{action}/minutely", {"csrfmiddlewaretoken": token}).status_code == 403
    assert not paused("minutely") and not store().hgetall("redbeat::run-now")
    assert AuditEntry.objects.count() == 0


def test_an_operator_pauses_an_entry_and_the_leader_skips_it(leader: RedBeatScheduler) -> None:
    operator = signed_in("operator")
    entry = operator.get("/entry/minutely")
    assert b"Pause</button>" in entry.content
    assert operator.post("/action/pause/minutely").status_code == 403  # no CSRF token: refused
    assert not paused("minutely")
    response = operator.post("/action/pause/minutely", {"csrfmiddlewaretoken": csrf_token(entry)}, follow=True)
    assert response.redirect_chain == [("/entry/minutely", 302)]
    assert paused("minutely") and b"paused minutely" in response.content
    assert b"Resume</button>" in response.content
    listed = operator.get("/", {"state": "paused"}).content.decode()
    assert re.findall(r'data-entry="([^"]+)"', listed) == ["minutely"]
    before = len(ids(QUEUE))
    make_due("minutely")
    leader.tick()
    assert len(ids(QUEUE)) == before  # skipped while paused
    [audit] = AuditEntry.objects.all()
    assert (audit.username, audit.action, audit.entry) == ("operator", "pause", "minutely")
    assert "paused minutely" in audit.outcome and "operator" in operator.get("/").content.decode()


def test_run_now_is_published_by_the_leader_and_its_run_shows_in_recent_runs(leader: RedBeatScheduler) -> None:
    operator = signed_in("operator")
    entry = operator.get("/entry/minutely")
    response = operator.post("/action/run/minutely", {"csrfmiddlewaretoken": csrf_token(entry)}, follow=True)
    assert b"requested a run of minutely" in response.content
    [(requested, stamp)] = store().hgetall("redbeat::run-now").items()
    assert requested == "minutely"
    leader.tick()
    assert ids(QUEUE).count(f"minutely@{stamp}") == 1 and not store().hgetall("redbeat::run-now")
    # The workers' records of the run (as the platform's worker writes them, under the task's name): the run, and a
    # second delivery of it that a worker dropped.
    slot = f"minutely@{stamp}"
    runlog.record_run("t.minutely", QUEUE, "success", 0.25, slot=slot)
    runlog.record_run("t.minutely", QUEUE, runlog.DUPLICATE, 0.0, slot=slot)
    runlog.record_run("t.hourly", "celery", "failed", 1.5, "ValueError", slot="hourly@1795000000")
    runs = operator.get("/entry/minutely").content.decode()
    table = runs[runs.index('id="runs"') :]
    row = table[table.index(f'data-slot="{slot}"') :].split("</tr>")[0]
    cells = re.findall(r"<td>([^<]*)</td>", row)
    assert cells[0] == slot and cells[-2:] == ["success", "1"] and cells[6] == "0.250s"
    # Late: from the request (the slot's due time, in milliseconds) to the run's start (finished less duration).
    first: Any = get_client(LOG).xrange(runlog.stream_key(), count=1)  # decoded replies
    late = float(first[0][1]["ts"]) - 0.25 - int(stamp) / 1000
    assert cells[5] == f"{late:+.3f}s"
    assert "ValueError" not in table and "hourly@" not in table
    listed = operator.get("/", {"q": "minutely"}).content.decode()
    assert f"<td>{late:+.1f}s</td>" in listed.split('data-entry="minutely"')[1].split("</tr>")[0]


def test_a_store_that_cannot_be_reached_is_named_and_the_rest_still_shows(app: Celery) -> None:
    app.conf.redbeat_redis_url = f"redis://127.0.0.1:{free_port()}/0"
    page = signed_in("reader").get("/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "cannot be read" in text and "redis://127.0.0.1:" in text
    assert all(f'data-entry="{name}"' in text for name in ENTRIES)  # the configured entries, still listed


def crontab_queue(connection: Any, name: str) -> Queue:
    queue = Queue(name, Exchange(name), routing_key=name, channel=connection.default_channel)
    queue.declare()
    queue.purge()  # whatever an earlier run left
    return queue


@pytest.mark.rabbitmq
def test_the_workers_page_counts_each_queue_and_names_a_supervisord_that_does_not_answer(
    app: Celery, rabbitmq_service: None, tmp_path: Path
) -> None:
    app.conf.broker_url = f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}//"
    name = queue_names()[0]
    with app.connection_for_write() as connection:
        queue = crontab_queue(connection, name)
        try:
            producer = Producer(connection.default_channel, exchange=queue.exchange, routing_key=name)
            for n in range(3):
                producer.publish({"n": n})
            taken: list[Any] = []
            absent = override_settings(SUPERVISOR_SERVER=f"unix://{tmp_path}/absent.sock")
            with connection.channel() as channel, absent:
                channel.basic_qos(0, 1, False)  # the consumer holds one message, unacknowledged
                with Consumer(channel, [queue], callbacks=[lambda body, message: taken.append(message)]):
                    connection.drain_events(timeout=10)
                    assert len(taken) == 1
                    page = signed_in("reader").get("/workers/").content.decode()
        finally:
            queue.delete()
    # Two waiting and one consumer, as RabbitMQ counts them.
    row = page[page.index(f'data-queue="{name}"') :].split("</tr>")[0]
    assert re.findall(r"<td>(\d+)</td>", row) == ["2", "1"]
    assert f"supervisord ({tmp_path}/absent.sock) does not answer" in page
    assert all(f'data-queue="{other}"' in page for other in queue_names())


def test_the_workers_page_on_the_redis_broker_names_a_broker_that_cannot_be_read(app: Celery, tmp_path: Path) -> None:
    name = queue_names()[0]
    with app.connection_for_write() as connection:
        queue = crontab_queue(connection, name)
        Producer(connection.default_channel, exchange=queue.exchange, routing_key=name).publish({"n": 1})
        page = signed_in("reader").get("/workers/").content.decode()
        queue.delete()
    row = page[page.index(f'data-queue="{name}"') :].split("</tr>")[0]
    assert "<td>1</td>" in row and "not counted by this broker" in row
    port = free_port()
    app.conf.broker_url = f"redis://:s3cret-pw@127.0.0.1:{port}/0"
    down = signed_in("reader").get("/workers/")
    text = down.content.decode()
    assert down.status_code == 200 and f"the broker (redis://:***@127.0.0.1:{port}/0) cannot be read" in text
    assert "s3cret-pw" not in text
