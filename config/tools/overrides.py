"""``BKAPP_SETTINGS_<NAME>`` environment overrides, applied after every settings module.

The original assigned the raw string whatever the setting's type, so ``BKAPP_SETTINGS_CELERY_WORKERS=4`` became
the string ``"4"``. Here the value is parsed as JSON when the setting it replaces is a list, tuple, dict, int,
float or bool, and a value of the wrong shape stops start-up with an error naming the variable. Values the original
took as raw strings still work as they meant: a list of names as ``a.b.c`` or ``a.b.c,d.e`` (the original's
``path in "a.b.c"`` was a substring test), a bool as ``True``/``False`` in any case (the original's ``"False"``
was a true string). The variable's name is upper-cased first, as the original did (``bkapp_settings_x`` sets X).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping
from typing import Any

PREFIX = "BKAPP_SETTINGS_"


class OverrideError(ValueError):
    """An override variable holds a value that does not fit its setting."""


def _raw(raw: str, current: Any) -> Any:
    """What a value that is not JSON meant, where the original's raw string had a meaning; else None."""
    if isinstance(current, bool) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    if isinstance(current, list | tuple) and all(isinstance(item, str) for item in current):
        return [item.strip() for item in raw.split(",") if item.strip()]
    return None


def _parse(var: str, raw: str, current: Any) -> Any:
    if current is None or isinstance(current, str):
        return raw
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        value = _raw(raw, current)
        if value is None:
            raise OverrideError(f"{var}: {raw!r} is not valid JSON ({exc.msg})") from None
    expected: tuple[type, ...]
    if isinstance(current, bool):
        expected = (bool,)
    elif isinstance(current, int):
        expected = (int,)
    elif isinstance(current, float):
        expected = (int, float)
    elif isinstance(current, list | tuple):
        expected = (list,)
    elif isinstance(current, dict):
        expected = (dict,)
    else:
        raise OverrideError(f"{var}: the setting holds a {type(current).__name__}, which cannot be overridden")
    # bool is a subclass of int: `true` must not pass for an int setting.
    if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
        names = " or ".join(t.__name__ for t in expected)
        raise OverrideError(f"{var}: expected a JSON {names} for this setting, got {raw!r}")
    if isinstance(current, tuple):
        return tuple(value)  # type: ignore[arg-type]  # checked above: a list
    if isinstance(current, float):
        return float(value)  # type: ignore[arg-type]  # checked above: an int or a float
    return value


def apply_overrides(namespace: MutableMapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    """Apply every ``BKAPP_SETTINGS_<NAME>`` in ``environ`` to ``namespace``; return the names changed."""
    changed = []
    for var in sorted(environ):
        # Upper-cased, as the original read them.
        if not var.upper().startswith(PREFIX) or len(var) == len(PREFIX):
            continue
        name = var[len(PREFIX) :].upper()
        namespace[name] = _parse(var, environ[var], namespace.get(name))
        changed.append(name)
    return changed
