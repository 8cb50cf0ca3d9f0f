"""``GlobalConfig``: the original's table of settings edited at run time (``global_setting``), read by
``alarm_backends.core.dynamic_settings``.

The columns are the original's, so the platform reads an existing deployment's rows where it shares the database
(``manage.py migrate --fake-initial`` records the table as created when it is already there). ``value`` holds JSON
text, as the original's ``JsonField`` does.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import models


class GlobalConfig(models.Model):
    key = models.CharField("key", max_length=255, unique=True)
    value = models.TextField("value (JSON)", blank=True)
    create_at = models.DateTimeField("created", auto_now_add=True)
    update_at = models.DateTimeField("updated", auto_now=True)
    description = models.TextField("description", default="")
    data_type = models.CharField("data type", default="JSON", max_length=32)
    options = models.TextField("field options (JSON)", default="{}", blank=True)
    is_advanced = models.BooleanField("advanced", default=False)
    is_internal = models.BooleanField("internal", default=False)

    class Meta:
        db_table = "global_setting"
        verbose_name = "setting edited at run time"

    @classmethod
    def get(cls, key: str, default: Any = None) -> Any:
        """The decoded value of ``key`` (the last row, as the original reads it), or ``default`` when there is no
        row. Database errors and undecodable values propagate: the caller decides what a missing table means."""
        row = cls.objects.filter(key=key).order_by("pk").last()
        if row is None:
            return default
        return json.loads(row.value)

    @classmethod
    def set(cls, key: str, value: Any) -> None:
        cls.objects.update_or_create(key=key, defaults={"value": json.dumps(value)})
