"""``manage.py celerybeat …`` = ``manage.py celery beat …`` (the old command name)."""

from alarm_backends.management.commands.celery import Command as CeleryCommand


class Command(CeleryCommand):
    help = "Run Celery beat for the SaaS app."
    prefix = ["beat"]
