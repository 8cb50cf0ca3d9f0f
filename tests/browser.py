"""Browser tests' tools: headless Chromium driven by Selenium through its chromedriver (Debian's chromium and
chromium-driver, which ``make test`` installs as root), and the console served over real HTTP from the test process
(Django's threaded WSGI server, as Django's own live-server tests serve it), so it reads the test's Redis DBs and
the test's database."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application
from selenium import webdriver
from selenium.common.exceptions import JavascriptException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.gate import skip_or_fail
from tests.net import LOOPBACK

WAIT = 15.0  # seconds a page or an element may take to show up
BODY_TEXT = "return document.body ? document.body.innerText : ''"  # the page's text as WebDriver's own would read it
# Chromium as root, without a screen, in a network that refuses everything but loopback: no sandbox (root), no GPU,
# and none of the background services that would call out at start.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-quic", "--window-size=1600,1000")  # fmt: skip


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        skip_or_fail(f"{name} is not installed (Debian's chromium and chromium-driver; `make test` installs them)")
    return found


@contextmanager
def chromium(profile: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = binary("chromium")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(binary("chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: the test's assertions say what went wrong."""


@contextmanager
def live_console() -> Iterator[str]:
    """The console's WSGI application on a free loopback port, served by threads of this process; its base URL."""
    server = ThreadedWSGIServer((LOOPBACK, 0), QuietHandler, allow_reuse_address=False)
    server.set_app(get_wsgi_application())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def wait_text(driver: webdriver.Chrome, text: str, timeout: float = WAIT) -> None:
    """Until the page's text holds ``text`` (a page still loading is asked again).

    The text is read by one script in one document: finding ``body`` and then asking its text are two commands, and
    a navigation between them (the sign-in form's redirect) fails the second with Chrome's "node does not belong to
    the document", an error no ignore-list can name (WebDriverException, the base of every failure)."""
    waiting = WebDriverWait(driver, timeout, ignored_exceptions=(JavascriptException,))
    waiting.until(lambda d: text in d.execute_script(BODY_TEXT), f"{text!r} on {driver.current_url}")


def post_status(driver: webdriver.Chrome, path: str) -> int:
    """The status of a POST to ``path`` from the page, as its own script would send it: with the CSRF token of the
    page's form, so a refusal is the permission's, not the CSRF check's."""
    script = """
        const token = document.querySelector('[name=csrfmiddlewaretoken]').value;
        const response = await fetch(arguments[0], {method: 'POST', headers: {'X-CSRFToken': token}});
        return response.status;
    """
    return int(driver.execute_script(script, path))


def sign_in(driver: webdriver.Chrome, base: str, username: str, password: str) -> None:
    driver.get(f"{base}/login/")
    driver.delete_all_cookies()  # the console's own (a cookie belongs to the page's site): signed out
    driver.get(f"{base}/login/")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    wait_text(driver, f"{username} (")
