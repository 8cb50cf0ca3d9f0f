"""The Django database (``DATABASES["default"]``) from the environment (pure: no I/O).

The SaaS beat keeps its schedule in this database (django-celery-beat's tables). The embedded default is a SQLite
file in the run dir, which needs nothing installed; ``BKAPP_DB_ENGINE=postgresql`` selects a PostgreSQL server
(``BKAPP_DB_HOST``, ``BKAPP_DB_PORT``, ``BKAPP_DB_NAME``, ``BKAPP_DB_USER``, ``BKAPP_DB_PASSWORD``), which needs
the ``psycopg`` package.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from config.tools.env import EnvError, first, first_int

SQLITE, POSTGRESQL = "sqlite", "postgresql"
ENGINES = {
    SQLITE: "django.db.backends.sqlite3",
    POSTGRESQL: "django.db.backends.postgresql",
}
# Other spellings operators use for the same engine.
ALIASES = {"sqlite3": SQLITE, "postgres": POSTGRESQL, "pgsql": POSTGRESQL}
SQLITE_FILE = "db.sqlite3"


def database_settings(environ: Mapping[str, str], run_dir: str) -> dict[str, Any]:
    """``DATABASES["default"]``: SQLite at ``<run_dir>/db.sqlite3`` unless ``BKAPP_DB_ENGINE`` says otherwise."""
    raw = first(environ, "BKAPP_DB_ENGINE", default=SQLITE).strip().lower()
    engine = ALIASES.get(raw, raw)
    if engine not in ENGINES:
        raise EnvError(f"BKAPP_DB_ENGINE={raw!r} must be one of {', '.join(ENGINES)}")
    if engine == SQLITE:
        return {"ENGINE": ENGINES[SQLITE], "NAME": os.path.join(run_dir, SQLITE_FILE)}
    return {
        "ENGINE": ENGINES[POSTGRESQL],
        "HOST": first(environ, "BKAPP_DB_HOST", default="127.0.0.1"),
        "PORT": first_int(environ, "BKAPP_DB_PORT", default=5432),
        "NAME": first(environ, "BKAPP_DB_NAME", default="bkmonitor"),
        "USER": first(environ, "BKAPP_DB_USER", default="bkmonitor"),
        "PASSWORD": environ.get("BKAPP_DB_PASSWORD", ""),
        # One connection per process, kept across requests and beat ticks instead of one per query.
        "CONN_MAX_AGE": 60,
    }
