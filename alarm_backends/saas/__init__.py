"""The SaaS app's side of the platform: its housekeeping tasks (``tasks``), run by the SaaS app of ``config.celery``."""
