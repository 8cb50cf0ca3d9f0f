"""The backend Celery app and its periodic-task loaders."""
