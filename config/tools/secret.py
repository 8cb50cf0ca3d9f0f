"""The operators' console's signing key when none is configured.

Django signs with ``SECRET_KEY`` (the console's message cookies, its users' session hashes). Without
``BKAPP_SECRET_KEY`` the settings hold a public development default, which must not sign anything a browser holds.
The console (``config/wsgi.py``) then uses a random key of the host's own, made once in the run dir (mode 0600) and
read by every console process after it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

DEVELOPMENT_KEY = "bkmonitor-development-only-secret-key"
KEY_FILE = "console-secret-key"


def host_secret_key(run_dir: str) -> str:
    """The key in ``<run_dir>/console-secret-key``, made if missing. Processes starting together agree: the key is
    written to a file of the writer's own and linked into place, which only the first link does."""
    path = Path(run_dir) / KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        return _read(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{KEY_FILE}.{os.getpid()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(secrets.token_urlsafe(50))
    try:
        os.link(draft, path)
    except FileExistsError:  # another process linked its key first: that one is the host's
        pass
    finally:
        draft.unlink()
    return _read(path)


def _read(path: Path) -> str:
    key = path.read_text(encoding="ascii").strip()
    if len(key) < 50:
        raise ValueError(f"{path} holds no usable key (fewer than 50 characters): delete it to have a new one made")
    return key
