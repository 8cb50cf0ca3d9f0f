"""A pipeline task registered only by discovery: nothing else imports this module."""

from __future__ import annotations

from celery import shared_task

from tests.integration.jobs import record_effect


@shared_task(name="tests.discovered.pipeline.echo")
def echo() -> None:
    record_effect()
