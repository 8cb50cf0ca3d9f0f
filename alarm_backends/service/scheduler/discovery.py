"""The packages whose ``tasks`` modules the backend app discovers, as the original's app.py lists them: every
sub-package of ``TASK_ROOT_MODULES`` (its list: ``alarm_backends.service``, ``alarm_backends.core``, ``api``,
``apm``, ``metadata``, …) and ``INSTALLED_APPS``.

Product code registers its pipeline tasks this way. A worker that never imported a task's module rejects its
messages as unregistered, so a deployment's own packages must be found here. A root that is not installed on this
host is skipped: the list names the original's whole product, of which a deployment may carry only a part.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable


def discover_packages(roots: Iterable[str], installed_apps: Iterable[str]) -> list[str]:
    """Every sub-package of each importable root, then the installed apps (Celery imports ``<package>.tasks`` of
    each, skipping those without one)."""
    packages: list[str] = []
    for root in roots:
        try:
            module = importlib.import_module(root)
        except ModuleNotFoundError as exc:
            if exc.name and (root == exc.name or root.startswith(f"{exc.name}.")):
                continue  # not installed on this host
            raise  # installed, but it imports something missing: that is an error to see
        path = getattr(module, "__path__", None)
        if path is not None:
            packages += [f"{root}.{info.name}" for info in pkgutil.iter_modules(path) if info.ispkg]
    return [*packages, *installed_apps]
