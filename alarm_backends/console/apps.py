from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "alarm_backends.console"
    label = "console"
    verbose_name = "operators' console"
