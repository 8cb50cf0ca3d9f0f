"""Django app of the back end: registers the system checks of the crontab lists."""

from django.apps import AppConfig


class AlarmBackendsConfig(AppConfig):
    name = "alarm_backends"
    verbose_name = "alarm back end"

    def ready(self) -> None:
        from alarm_backends import checks  # noqa: F401  (registers the checks)
