"""The platform's Prometheus metrics (``metrics``), the Celery task timer and the host's exporter.

In multi-process mode prometheus-client writes each process's samples under ``PROMETHEUS_MULTIPROC_DIR`` and fails
on the first metric when that directory does not exist. This package is imported before any metric is created (the
Django app's checks import it while Django sets up), so it creates the directory: a missing one must not keep beat
or a worker from starting — `make run` creates and empties it, a config written by other means may not.
"""

import os

_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _MULTIPROC_DIR:
    os.makedirs(_MULTIPROC_DIR, exist_ok=True)
