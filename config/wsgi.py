"""The WSGI application of the operators' console (``gunicorn config.wsgi:application``)."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from config.tools.secret import DEVELOPMENT_KEY, host_secret_key

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
if settings.SECRET_KEY == DEVELOPMENT_KEY:  # nothing a browser holds is signed with the public default
    settings.SECRET_KEY = host_secret_key(settings.RUN_DIR)
application = get_wsgi_application()
