"""Which environment variables hold a secret, so a rendered supervisord config never passes them on.

A rendered config is read by more people and tools than the environment supervisord runs in (``--check`` prints
it, operators diff and paste it), so a variable that holds a secret anywhere is left out of ``environment=``: the
programs inherit it from supervisord's own environment instead. One rule for every renderer (the scheduler's and
the SaaS host's); pure, no I/O — the configured secrets come from the caller (``configured_secrets``).

A variable holds a secret when:

1. its name names one (``secret_name``);
2. its value holds URL credentials: ``scheme://user:password@`` or ``scheme://token@``;
3. its value is JSON and, anywhere inside (nested objects and lists, and JSON held in a string), a key names a
   secret or a string holds URL credentials or a configured secret;
4. its value contains a configured secret of the settings, raw or URL-quoted.

Names are split into words at ``_``, ``-``, ``.``, blanks and camelCase humps (``apiKey`` → ``API KEY``). A name
names a secret when a word contains PASSWORD, PASSWD, PASSPHRASE, SECRET, TOKEN or CREDENTIAL, a word is PWD or
ends in PASS (``RABBITMQ_PASS``, ``dbpass``), or the last word ends in KEY and is not the whole name (``SECRET_KEY``,
``API_KEY``, ``apiKey``, ``PRIVATE_KEY``). KEY anywhere else names where something is kept, not a credential:
``KEY_PREFIX``, ``REDBEAT_KEY_PREFIX``, ``CONSUL_CLIENT_KEY_FILE`` (a path), ``key``, ``keys``. The rule errs on the
side of leaving out (``routing_key``, ``max_tokens``, ``BYPASS`` count as secrets): a variable left out is still
inherited from supervisord's environment, and the commands name every variable they leave out, while one written
in would put a credential in a file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any
from urllib.parse import quote

# Settings whose values are secrets, wherever else they are copied (a JSON override, a URL, a DSN).
SECRET_SETTINGS = (
    "REDIS_PASSWORD",
    "REDIS_SENTINEL_PASSWORD",
    "CACHE_REDIS_PASSWORD",
    "CACHE_REDIS_SENTINEL_PASSWORD",
    "RABBITMQ_PASS",
    "CONSUL_ACL_TOKEN",
    "SECRET_KEY",
)
# Contained anywhere in a word: DBPASSWORD, clientSecret, ACCESSTOKEN, CREDENTIALS.
SECRET_WORD_PARTS = ("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "CREDENTIAL")
# Userinfo in a URL: a password or a bare token before the host. Stops at "/", so "http://h/p?mail=a@b" is not one.
_URL_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s]+@")
_HUMP = re.compile(r"([a-z0-9])([A-Z])")
_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")
# A string inside JSON that may itself be JSON (a nested override serialized twice).
_JSON_START = ("{", "[")


def name_words(name: str) -> list[str]:
    """``"apiKey"`` → ``["API", "KEY"]``; ``"BK_MONITOR_REDIS_PASSWORD"`` → its four words."""
    return [word.upper() for word in _SEPARATORS.split(_HUMP.sub(r"\1_\2", name)) if word]


def secret_name(name: str) -> bool:
    """Whether a variable's name or a JSON key names a secret (the rule is in the module's docstring)."""
    words = name_words(name)
    if not words:
        return False
    for word in words:
        if word == "PWD" or word.endswith("PASS") or any(part in word for part in SECRET_WORD_PARTS):
            return True
    return words[-1].endswith("KEY") and words != ["KEY"]


def has_url_credentials(text: str) -> bool:
    return bool(_URL_CREDENTIALS.search(text))


def _forms(secret: str) -> set[str]:
    # Quoted both ways because URLs in settings are built with either (a password with "/" differs between them).
    return {secret, quote(secret, safe=""), quote(secret)}


def contains_secret(text: str, secrets: Collection[str]) -> bool:
    """Whether ``text`` holds one of ``secrets`` (an empty secret is none: it is in every string)."""
    return any(form in text for secret in secrets if secret for form in _forms(secret))


def _string_holds_secret(text: str, secrets: Collection[str]) -> bool:
    if has_url_credentials(text) or contains_secret(text, secrets):
        return True
    if text.lstrip().startswith(_JSON_START):
        parsed = _parse_json(text)
        return parsed is not None and _json_holds_secret(parsed[0], secrets)
    return False


def _json_holds_secret(node: Any, secrets: Collection[str]) -> bool:
    """Walk parsed JSON: a key that names a secret, or a string (key or value) that holds one."""
    if isinstance(node, dict):
        for key, value in node.items():
            if secret_name(key) or _string_holds_secret(key, secrets) or _json_holds_secret(value, secrets):
                return True
        return False
    if isinstance(node, list):
        return any(_json_holds_secret(item, secrets) for item in node)
    if isinstance(node, str):
        return _string_holds_secret(node, secrets)
    return False  # numbers, booleans, null: a numeric password is caught in the raw value


def _parse_json(text: str) -> tuple[Any] | None:
    """``(value,)`` when ``text`` is JSON (a 1-tuple, since ``null`` parses to None), else None."""
    try:
        return (json.loads(text),)
    except ValueError:
        return None


def holds_secret(name: str, value: str, secrets: Collection[str] = ()) -> bool:
    """Whether the variable ``name=value`` holds a secret; ``secrets``: the configured ones (``configured_secrets``)."""
    if secret_name(name) or has_url_credentials(value) or contains_secret(value, secrets):
        return True
    try:
        parsed = _parse_json(value)
        # The decoded strings matter: JSON escapes ("\u00e9", "\/") would hide a secret from the raw comparison.
        return parsed is not None and _json_holds_secret(parsed[0], secrets)
    except RecursionError:
        return True  # nested too deep to inspect: leaving it out is the safe answer


def configured_secrets(conf: Any) -> frozenset[str]:
    """The secret values of the settings ``conf``: ``SECRET_SETTINGS`` and every database's PASSWORD."""
    values: list[Any] = [getattr(conf, name, "") for name in SECRET_SETTINGS]
    databases = getattr(conf, "DATABASES", None) or {}
    values += [db.get("PASSWORD", "") for db in databases.values() if isinstance(db, dict)]
    return frozenset(str(value) for value in values if value not in (None, ""))
