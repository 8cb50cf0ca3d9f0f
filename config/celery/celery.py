"""The SaaS Celery app. Unlike the original it does not force ``C_FORCE_ROOT``: run it as a normal user."""

import os

from celery import Celery
from celery.signals import beat_init, setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

app = Celery("proj")
app.config_from_object("config.celery.config:Config")
app.autodiscover_tasks()


@setup_logging.connect
def _setup_logging(**_: object) -> None:
    # Celery would otherwise install its own root handlers over Django's LOGGING.
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@beat_init.connect
def _close_old_connections(**_: object) -> None:
    # A long-lived beat must not keep a DB connection that the server has since dropped.
    from django.db import close_old_connections

    close_old_connections()
