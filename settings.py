"""Django settings: ``config.default`` → ``config.<dev|stag|prod>`` → ``config.role.<ROLE>`` → overrides → the
original's names (``config.tools.compat``).

Each later module may replace what an earlier one set; finally every ``BKAPP_SETTINGS_<NAME>`` environment variable
replaces setting ``<NAME>`` (typed: see ``config.tools.overrides``). Then every setting the processes read is
checked (``config.tools.validation``). A bad value stops start-up with ``ImproperlyConfigured``, one line per
culprit naming the variable; ``manage.py`` and the backend app print those lines and exit with status 2.
"""

import importlib
import os

from django.core.exceptions import ImproperlyConfigured

from config.tools.env import EnvError
from config.tools.logging import build_logging

try:
    from config.default import *
    from config.tools.compat import original_names
    from config.tools.environment import NEW_ENV, ROLE
    from config.tools.overrides import apply_overrides
    from config.tools.validation import validate

    for _name in (f"config.{NEW_ENV}", f"config.role.{ROLE}"):
        try:
            _module = importlib.import_module(_name)
        except ModuleNotFoundError as _exc:
            if _exc.name != _name:
                raise
            raise ImproperlyConfigured(
                f"DJANGO_CONF_MODULE names a role or environment with no module {_name}"
            ) from None
        globals().update({_key: getattr(_module, _key) for _key in dir(_module) if _key.isupper()})

    apply_overrides(globals(), os.environ)
    validate(globals(), os.environ)
    # The names the original's product code reads (REDIS_LOG_CONF, CACHE_BACKEND_TYPE, …), from the settings above.
    globals().update(original_names(globals()))
    LOGGING = build_logging(
        level=LOG_LEVEL, handlers=LOG_HANDLERS, log_path=LOG_PATH, prefix=LOG_FILE_PREFIX, fmt=LOG_FORMAT
    )
except (EnvError, ValueError) as _exc:
    # One line naming the variable, instead of a traceback through the settings modules.
    raise ImproperlyConfigured(str(_exc)) from None
