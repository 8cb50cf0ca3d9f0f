"""A worker registers the product's task modules as the original's app discovered them: every sub-package of
``TASK_ROOT_MODULES`` (here a stand-in product package, ``tests/integration/discovered``) that has a ``tasks``
module. Nothing else imports that module: without discovery the worker would reject its messages as unregistered."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.integration.conftest import Worker, wait_for
from tests.integration.jobs import EFFECT_KEY

pytestmark = pytest.mark.redis

TASK = "tests.discovered.pipeline.echo"


def test_a_product_task_module_is_discovered_and_runs(redis_dbs: None, start_worker: Callable[..., Worker]) -> None:
    from alarm_backends.core.storage.redis import SERVICE, get_client
    from alarm_backends.service.scheduler.app import app

    roots = json.dumps(["tests.integration.discovered", "a_product_package_not_installed_here"])
    worker = start_worker("monitor", BKAPP_SETTINGS_TASK_ROOT_MODULES=roots)
    assert f". {TASK}" in worker.log()  # the banner's list of registered tasks
    app.send_task(TASK, queue="monitor")
    wait_for(lambda: get_client(SERVICE).llen(EFFECT_KEY) >= 1, 30, "the discovered task to run")
    assert "unregistered" not in worker.log()
