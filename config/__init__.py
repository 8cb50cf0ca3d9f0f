"""Settings modules, loaded by ``settings.py`` in the order default → dev|stag|prod → role.<ROLE>.

The SaaS Celery app is exported here as ``celery_app``, as in the original, so it is the app that
``manage.py celery`` drives.
"""

from config.celery import app as celery_app

__all__ = ["celery_app"]
