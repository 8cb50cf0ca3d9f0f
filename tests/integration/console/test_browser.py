"""The console in a real browser (headless Chromium through Selenium) against the platform's own backend app: its
crontab synced into the store by a scheduler of this process (the leader, ticked by the test), and a real worker
consuming the long-task queue. An operator signs in, finds an entry by search, pauses it and sees it paused and
skipped by the leader, resumes it, runs it now and sees the worker's run in its recent runs, sees the leader and a
queue's depth; an anonymous visitor and a read-only user are refused the controls (HTTP 403, Redis unchanged).

With ``BKM_CONSOLE_SCREENSHOTS=<dir>`` each page is also saved there (the README's screenshots)."""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery
from kombu import Exchange, Producer, Queue
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from alarm_backends.jobs.queue_depth import queue_names
from patches.redbeat.entries import decode_meta
from patches.redbeat.schedulers import RedBeatScheduler
from tests.browser import WAIT, chromium, live_console, post_status, sign_in, wait_text
from tests.integration.conftest import Worker, wait_for
from tests.integration.console.conftest import PASSWORD
from tests.integration.redbeat_helpers import store

pytestmark = [pytest.mark.redis, pytest.mark.timeout(300)]

ENTRY = "alarm_backends.service.scheduler.tasks.cron.alarm_backends_jobs_log_trim"  # LONG_TASK_CRONTAB, hourly
LONG_QUEUE = "celery_long_task_cron"


@pytest.fixture
def platform_app(users: None) -> Celery:
    from alarm_backends.service.scheduler.app import app

    return app


@pytest.fixture
def leader(platform_app: Celery) -> Iterator[RedBeatScheduler]:
    beat = RedBeatScheduler(app=platform_app)
    beat.tick()  # takes the lock and syncs the platform's crontab into the store
    assert beat.leading
    yield beat
    beat.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path / "profile") as driver:
        yield driver


@pytest.fixture
def console() -> Iterator[str]:
    with live_console() as base:
        yield base


def shot(driver: webdriver.Chrome, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("BKM_CONSOLE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    # The whole page, not the window: the window grows to the page's height for the shot.
    size = driver.get_window_size()
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(size["width"], min(max(height + 140, 600), 4000))
    try:
        assert driver.save_screenshot(str(folder / f"{name}.png"))
    finally:
        driver.set_window_size(size["width"], size["height"])


def paused() -> bool:
    return store().hget(f"redbeat:{ENTRY}", "paused") is not None


def runs() -> int:
    """The entry's run count in its stored meta."""
    return decode_meta(store().hget(f"redbeat:{ENTRY}", "meta"))[1]


def press(driver: webdriver.Chrome, button: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f"button[name={button}]").click()


def test_anonymous_and_read_only_visitors_are_refused_the_controls(
    leader: RedBeatScheduler, browser: webdriver.Chrome, console: str, tmp_path: Path
) -> None:
    browser.get(f"{console}/entry/{ENTRY}")
    wait_text(browser, "Sign in")
    assert browser.current_url.startswith(f"{console}/login/")
    shot(browser, "login", tmp_path)
    for action in ("pause", "run"):
        assert post_status(browser, f"/action/{action}/{ENTRY}") == 403
    sign_in(browser, console, "reader", PASSWORD)
    browser.get(f"{console}/entry/{ENTRY}")
    wait_text(browser, "(read-only)")
    assert not browser.find_elements(By.CSS_SELECTOR, "button[name=pause]")
    for action in ("pause", "run"):
        assert post_status(browser, f"/action/{action}/{ENTRY}") == 403
    assert not paused() and not store().hgetall("redbeat::run-now")


def test_an_operator_pauses_resumes_and_runs_an_entry_and_sees_the_workers_run(
    leader: RedBeatScheduler,
    browser: webdriver.Chrome,
    console: str,
    start_worker: Callable[..., Worker],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    start_worker(LONG_QUEUE)
    sign_in(browser, console, "operator", PASSWORD)
    shot(browser, "schedule", tmp_path)
    # Find the entry by search, and open it.
    search = browser.find_element(By.NAME, "q")
    search.send_keys("log_trim", Keys.ENTER)
    WebDriverWait(browser, WAIT).until(lambda driver: "q=log_trim" in driver.current_url, "the search's results")
    rows = browser.find_elements(By.CSS_SELECTOR, "#schedule tbody tr[data-entry]")
    assert [row.get_attribute("data-entry") for row in rows] == [ENTRY]
    rows[0].find_element(By.LINK_TEXT, ENTRY).click()
    wait_text(browser, "Recent runs")

    # Pause: the page says so, the store holds it, and the leader skips the entry's slot.
    press(browser, "pause")
    wait_text(browser, f"paused {ENTRY}")
    assert paused() and browser.find_elements(By.CSS_SELECTOR, "button[name=resume]")
    runs_before = runs()
    store().zadd("redbeat::schedule", {f"redbeat:{ENTRY}": leader.store.client.time()[0] - 1})  # its slot is due
    with caplog.at_level(logging.INFO, logger="celery.beat"):
        leader.tick()
    # Skipped, not published (other entries may fall due meanwhile): its slot passed, no run counted, none sent.
    assert store().zscore("redbeat::schedule", f"redbeat:{ENTRY}") > leader.store.client.time()[0]
    assert runs() == runs_before and not [m for m in caplog.messages if f"Sent due task {ENTRY}@" in m]
    shot(browser, "entry-paused", tmp_path)

    # Resume, then run it now: the leader publishes the request, the worker runs it, its run shows on the page.
    press(browser, "resume")
    wait_text(browser, f"resumed {ENTRY}")
    assert not paused()
    press(browser, "run")
    wait_text(browser, f"requested a run of {ENTRY}")
    [stamp] = store().hgetall("redbeat::run-now").values()
    slot = f"{ENTRY}@{stamp}"
    leader.tick()
    assert not store().hgetall("redbeat::run-now")

    def shows_the_run() -> bool:
        browser.get(f"{console}/entry/{ENTRY}")
        cells = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, f'tr[data-slot="{slot}"] td')]
        return bool(cells) and cells[-2] == "success"

    wait_for(shows_the_run, 60, f"the worker's run of {slot} in the entry's recent runs")
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-slot="{slot}"]').text
    assert socket.gethostname() in row  # the worker that ran it
    shot(browser, "entry", tmp_path)
    audit = browser.find_element(By.TAG_NAME, "body").text
    assert all(f"{action} {ENTRY}" in audit for action in ("pause", "resume", "run"))

    # The leader, as the lock's value names this process.
    browser.get(f"{console}/leadership/")
    wait_text(browser, f"a beat leads (host {socket.gethostname()}, pid {os.getpid()}")
    shot(browser, "leadership", tmp_path)

    # A queue's depth: two messages on a crontab queue nobody consumes.
    waiting = next(name for name in queue_names() if name.endswith("celery_action_cron"))
    with leader.app.connection_for_write() as connection:
        queue = Queue(waiting, Exchange(waiting), routing_key=waiting, channel=connection.default_channel)
        queue.declare()
        queue.purge()
        try:
            producer = Producer(connection.default_channel, exchange=queue.exchange, routing_key=waiting)
            for n in range(2):
                producer.publish({"n": n})
            browser.get(f"{console}/workers/")
            wait_text(browser, "Crontab queues")
            depth = browser.find_element(By.CSS_SELECTOR, f'tr[data-queue="{waiting}"]').text
            shot(browser, "workers", tmp_path)
        finally:
            queue.delete()
    assert re.fullmatch(rf"{re.escape(waiting)} 2 .*", depth), depth
