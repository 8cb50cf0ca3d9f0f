"""Writing a job's record: a Redis hash replaced as a whole, so no field outlives the run that wrote it."""

from __future__ import annotations

from collections.abc import Mapping

from redis.typing import EncodableT, FieldT

from alarm_backends.core.storage.redis import get_client


def replace_hash(role: str, name: str, fields: Mapping[str, str], ttl: int | None = None) -> None:
    """Replace the hash ``name`` in the DB of ``role`` with ``fields`` (and a TTL in seconds), atomically.

    Readers never see a half-written record, and a field dropped from one version of a job (a queue removed from
    the crontab lists, a Redis role gone) does not keep its last value forever.
    """
    mapping: dict[FieldT, EncodableT] = {field: value for field, value in fields.items()}
    with get_client(role).pipeline(transaction=True) as pipe:
        pipe.delete(name)
        pipe.hset(name, mapping=mapping)
        if ttl is not None:
            pipe.expire(name, ttl)
        pipe.execute()
