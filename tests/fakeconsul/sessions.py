"""Consul sessions: the stored record, and decoding/validating a ``PUT /v1/session/create`` body.

Follows ``agent/session_endpoint.go`` (defaults, check fix-ups), ``structs.Session.UnmarshalJSON`` (LockDelay) and
``Session.Apply`` (behavior and TTL checks, with Consul's error texts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.fakeconsul.durations import HOUR, SECOND, DurationError, format_duration, parse_duration
from tests.fakeconsul.errors import ConsulError, bad_request, server_error

SERF_HEALTH = "serfHealth"
BEHAVIOR_RELEASE = "release"
BEHAVIOR_DELETE = "delete"
DEFAULT_LOCK_DELAY = 15 * SECOND
# structs.MaxLockDelay: a longer LockDelay is accepted and stored, but invalidation applies at most this much.
MAX_LOCK_DELAY = 60 * SECOND
SESSION_TTL_MAX = 24 * HOUR
# A LockDelay below 1000ns is taken as seconds: clients send 15 meaning 15s, not 15ns.
_LOCK_DELAY_MIN_THRESHOLD = 1000


@dataclass
class ServiceCheck:
    id: str = ""
    namespace: str = ""

    def to_json(self) -> dict[str, str]:
        return {"ID": self.id, "Namespace": self.namespace}


@dataclass
class Session:
    id: str
    node: str
    name: str = ""
    lock_delay: int = DEFAULT_LOCK_DELAY  # nanoseconds, as Go's time.Duration marshals
    behavior: str = BEHAVIOR_RELEASE
    ttl: str = ""  # kept as the client wrote it ("60s"), like Consul
    node_checks: list[str] | None = None
    service_checks: list[ServiceCheck] | None = None
    checks: list[str] | None = None  # the pre-1.7 field, only shown when set
    create_index: int = 0
    modify_index: int = 0
    # When the TTL timer fires (the state's clock); None without a TTL. Not part of Consul's JSON.
    expires_at: float | None = field(default=None, compare=False)

    def ttl_nanos(self) -> int:
        return parse_duration(self.ttl) if self.ttl else 0

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "ID": self.id,
            "Name": self.name,
            "Node": self.node,
            "LockDelay": self.lock_delay,
            "Behavior": self.behavior,
            "TTL": self.ttl,
            "NodeChecks": self.node_checks,
            "ServiceChecks": None if self.service_checks is None else [c.to_json() for c in self.service_checks],
        }
        if self.checks:  # `json:",omitempty"`
            out["Checks"] = self.checks
        out["CreateIndex"] = self.create_index
        out["ModifyIndex"] = self.modify_index
        return out


@dataclass
class SessionRequest:
    """The session a create request asks for, after the HTTP layer's defaults and fix-ups."""

    node: str
    name: str = ""
    lock_delay: int = DEFAULT_LOCK_DELAY
    behavior: str = BEHAVIOR_RELEASE
    ttl: str = ""
    # The defaults as they stand after the HTTP layer's fix-up: the agent's serfHealth check, as a node check.
    node_checks: list[str] | None = field(default_factory=lambda: [SERF_HEALTH])
    service_checks: list[ServiceCheck] | None = None
    checks: list[str] | None = None

    def check_ids(self) -> list[str]:
        return [*(self.checks or []), *(self.node_checks or []), *(c.id for c in self.service_checks or [])]


class _Object(list[tuple[str, Any]]):
    """A JSON object as its ordered (key, value) pairs, so that keys can be matched case-insensitively in order."""


_JSON_TYPES = {str: "string", bool: "bool", int: "number", float: "number", list: "array", _Object: "object"}


def _decode_error(value: object, field_name: str, go_type: str) -> ConsulError:
    json_type = _JSON_TYPES.get(type(value), "value")
    return bad_request(
        f"Request decode failed: json: cannot unmarshal {json_type} into Go struct field Session.{field_name} "
        f"of type {go_type}"
    )


def _string(value: object, field_name: str, current: str) -> str:
    if value is None:  # JSON null leaves a Go string untouched
        return current
    if not isinstance(value, str):
        raise _decode_error(value, field_name, "string")
    return value


def _strings(value: object, field_name: str) -> list[str] | None:
    if value is None:  # JSON null sets a Go slice to nil
        return None
    if isinstance(value, _Object) or not isinstance(value, list):
        raise _decode_error(value, field_name, "[]string")
    return [_string(item, field_name, "") for item in value]


def _service_checks(value: object) -> list[ServiceCheck] | None:
    if value is None:
        return None
    if isinstance(value, _Object) or not isinstance(value, list):
        raise _decode_error(value, "ServiceChecks", "[]structs.ServiceCheck")
    checks = []
    for item in value:
        if not isinstance(item, _Object):
            raise _decode_error(item, "ServiceChecks", "structs.ServiceCheck")
        check = ServiceCheck()
        for key, val in item:
            if key.lower() == "id":
                check.id = _string(val, "ServiceChecks.ID", check.id)
            elif key.lower() == "namespace":
                check.namespace = _string(val, "ServiceChecks.Namespace", check.namespace)
        checks.append(check)
    return checks


def _lock_delay(value: object) -> int:
    # structs.Session.UnmarshalJSON: a string is a Go duration, a number is nanoseconds, anything else is zero;
    # then a result under 1000ns is read as seconds.
    if isinstance(value, str):
        try:
            nanos = parse_duration(value)
        except DurationError as error:
            raise bad_request(f"Request decode failed: {error}") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        nanos = int(value)
    else:
        nanos = 0
    return nanos * SECOND if nanos < _LOCK_DELAY_MIN_THRESHOLD else nanos


def decode_session_request(body: bytes, default_node: str) -> SessionRequest:
    """The session a ``PUT /v1/session/create`` body asks for. Keys match case-insensitively, as Go's JSON does."""
    # Before the fix-up the HTTP layer also defaults the deprecated Checks to serfHealth.
    request = SessionRequest(node=default_node, checks=[SERF_HEALTH])
    if body:  # Consul decodes the body only when ContentLength > 0
        try:
            document = json.loads(body, object_pairs_hook=_Object)
        except (ValueError, UnicodeDecodeError) as error:
            raise bad_request(f"Request decode failed: {error}") from None
        if document is not None:
            if not isinstance(document, _Object):
                json_type = _JSON_TYPES.get(type(document), "value")
                raise bad_request(f"Request decode failed: json: cannot unmarshal {json_type} into Go value")
            _apply_fields(request, document)
    _fixup_empty_session_checks(request)
    return request


def _apply_fields(request: SessionRequest, document: _Object) -> None:
    # Unknown keys (ID, CreateIndex, Namespace on CE, ...) are ignored, as Session's UnmarshalJSON does.
    for key, value in document:
        name = key.lower()
        if name == "name":
            request.name = _string(value, "Name", request.name)
        elif name == "node":
            request.node = _string(value, "Node", request.node)
        elif name == "behavior":
            request.behavior = _string(value, "Behavior", request.behavior)
        elif name == "ttl":
            request.ttl = _string(value, "TTL", request.ttl)
        elif name == "lockdelay" and value is not None:
            request.lock_delay = _lock_delay(value)
        elif name == "nodechecks":
            request.node_checks = _strings(value, "NodeChecks")
        elif name == "checks":
            request.checks = _strings(value, "Checks")
        elif name == "servicechecks":
            request.service_checks = _service_checks(value)


def _fixup_empty_session_checks(request: SessionRequest) -> None:
    # fixupEmptySessionChecks: before 1.7 an empty "Checks" meant "no checks at all", so it also empties the
    # default NodeChecks; a Checks of just serfHealth defers to NodeChecks; an empty NodeChecks drops Checks.
    if not request.checks:
        request.node_checks = []
    elif request.checks == [SERF_HEALTH] or not request.node_checks:
        request.checks = None


def validate_session_request(request: SessionRequest, ttl_min: int) -> None:
    """Session.Apply's checks, in its order, with its messages (each an RPC error, so HTTP 500)."""
    if not request.node:
        raise server_error("Must provide Node")
    if request.behavior == "":
        request.behavior = BEHAVIOR_RELEASE
    if request.behavior not in (BEHAVIOR_RELEASE, BEHAVIOR_DELETE):
        raise server_error(f"Invalid Behavior setting '{request.behavior}'")
    if request.ttl:
        try:
            ttl = parse_duration(request.ttl)
        except DurationError as error:
            raise server_error(f"Session TTL '{request.ttl}' invalid: {error}") from None
        if ttl != 0 and not ttl_min <= ttl <= SESSION_TTL_MAX:
            raise server_error(
                f"Invalid Session TTL '{ttl}', must be between "
                f"[{format_duration(ttl_min)}={format_duration(SESSION_TTL_MAX)}]"
            )
