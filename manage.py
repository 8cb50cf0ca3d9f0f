#!/usr/bin/env python
"""Django's command-line utility: ``celery``, ``hash_ring`` and the platform commands are management commands."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from config.tools.validation import refuse

    try:
        # Load the settings first: a bad value is one line per culprit and exit status 2, not a traceback through
        # Django's command machinery.
        settings.INSTALLED_APPS  # noqa: B018
    except ImproperlyConfigured as exc:
        refuse(str(exc))
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
