"""The HTTP API on top of :class:`~tests.fakeconsul.state.FakeConsulState`: routing, parameters, ACLs, JSON.

Transport-free (a :class:`Request` in, a :class:`Response` out) so the server module only moves bytes. Status
codes, messages and headers follow Consul's HTTP handlers (``agent/http.go``, ``agent/kvs_endpoint.go``,
``agent/session_endpoint.go``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlencode

from tests.fakeconsul.durations import SECOND, DurationError, parse_duration
from tests.fakeconsul.errors import ConsulError, bad_request, permission_denied, server_error
from tests.fakeconsul.kv import KVEntry
from tests.fakeconsul.sessions import Session, decode_session_request
from tests.fakeconsul.state import FakeConsulState

CONSUL_VERSION = "1.17.0"
# kv_max_value_size: Consul refuses bigger values before reading them.
KV_MAX_VALUE_SIZE = 512 * 1024
_UINT64_MAX = (1 << 64) - 1
_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"


class Headers(Protocol):
    """Request headers, looked up case-insensitively (``email.message.Message`` in the server)."""

    def get(self, name: str, /) -> str | None: ...


@dataclass
class Request:
    method: str
    path: str  # percent-decoded, like Go's URL.Path
    query: Mapping[str, list[str]]
    headers: Headers
    body: bytes = b""

    def has(self, name: str) -> bool:
        """Whether the parameter is present at all: Consul tests ``params["recurse"]``, so ``?recurse`` counts."""
        return name in self.query

    def param(self, name: str) -> str:
        """The first value, or "" (Go's ``Values.Get``)."""
        values = self.query.get(name)
        return values[0] if values else ""


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, message.encode(), _TEXT, headers or {})


def _parse_uint(text: str) -> int:
    # strconv.ParseUint(text, 10, 64), with Go's error text; Consul answers it as a 500.
    if not re.fullmatch(r"[0-9]+", text):
        raise server_error(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    value = int(text)
    if value > _UINT64_MAX:
        raise server_error(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


Handler = Callable[["_Call"], Response]


@dataclass
class _Call:
    """One request being served: what the route matched, the blocking parameters, and the caller's ACL standing."""

    request: Request
    rest: str  # the path after the route's prefix: a key, a session ID or a node name
    min_index: int = 0
    wait: float | None = None
    # False for the anonymous token of an ACL-enabled agent, which (default policy deny) may do nothing: Consul
    # refuses its writes and single reads with 403 and filters what it lists down to nothing.
    allowed: bool = True

    def require(self) -> None:
        if not self.allowed:
            raise permission_denied()


class ConsulAPI:
    def __init__(self, state: FakeConsulState, acl_token: str | None = None) -> None:
        self.state = state
        self.acl_token = acl_token
        # (path, is_prefix, methods, handler, parses ?index/?wait/?dc like Consul's s.parse)
        self._routes: list[tuple[str, bool, tuple[str, ...], Handler, bool]] = [
            ("/v1/agent/self", False, ("GET",), self._agent_self, False),
            ("/v1/session/create", False, ("PUT",), self._session_create, True),
            ("/v1/session/destroy/", True, ("PUT",), self._session_destroy, True),
            ("/v1/session/renew/", True, ("PUT",), self._session_renew, True),
            ("/v1/session/info/", True, ("GET",), self._session_info, True),
            ("/v1/session/node/", True, ("GET",), self._session_node, True),
            ("/v1/session/list", False, ("GET",), self._session_list, True),
            ("/v1/kv/", True, ("GET", "PUT", "DELETE"), self._kv, True),
        ]

    def handle(self, request: Request) -> Response:
        try:
            return self._route(request)
        except ConsulError as error:
            return _text(error.status, error.message)

    def _route(self, request: Request) -> Response:
        for path, is_prefix, methods, handler, parses in self._routes:
            if request.path == path or (is_prefix and request.path == path.rstrip("/")):
                rest = ""
            elif is_prefix and request.path.startswith(path):
                rest = request.path[len(path) :]
            else:
                continue
            allow = {"Allow": ", ".join((*methods, "OPTIONS"))}
            if request.method == "OPTIONS":
                return Response(200, headers=allow)
            if request.method not in methods:
                return _text(405, f"method {request.method} not allowed", allow)
            call = _Call(request, rest)
            if parses:
                self._parse_query_options(call)
            call.allowed = self._authorize(request)
            return handler(call)
        return _text(404, "404 page not found\n")

    def _parse_query_options(self, call: _Call) -> None:
        request = call.request
        if request.has("stale") and request.has("consistent"):
            raise bad_request("Cannot specify ?stale with ?consistent, conflicting semantics.")
        if request.param("wait"):
            try:
                call.wait = parse_duration(request.param("wait")) / SECOND
            except DurationError:
                raise bad_request("Invalid wait time") from None
        if request.param("index"):
            if not re.fullmatch(r"[0-9]+", request.param("index")) or int(request.param("index")) > _UINT64_MAX:
                raise bad_request("Invalid index")
            call.min_index = int(request.param("index"))
        dc = request.param("dc")
        if dc and dc != self.state.datacenter:
            raise server_error("No path to datacenter")

    def _authorize(self, request: Request) -> bool:
        if self.acl_token is None:
            return True
        # parseToken's order: ?token, then X-Consul-Token, then "Authorization: Bearer".
        token = request.param("token") or request.headers.get("X-Consul-Token") or ""
        if not token:
            scheme, _, value = (request.headers.get("Authorization") or "").strip().partition(" ")
            token = value.strip() if scheme.lower() == "bearer" else ""
        if not token:
            return False
        if token != self.acl_token:
            raise permission_denied("ACL not found")
        return True

    def _json(self, call: _Call, data: object, meta: dict[str, str] | None = None) -> Response:
        if call.request.has("pretty"):
            body = json.dumps(data, indent=4) + "\n"
        else:
            body = json.dumps(data, separators=(",", ":"))
        return Response(200, body.encode(), _JSON, meta or {})

    # -- agent ---------------------------------------------------------------------------------------------------

    def _agent_self(self, call: _Call) -> Response:
        call.require()  # agent:read
        state = self.state
        tags = {"dc": state.datacenter, "role": "consul", "build": f"{CONSUL_VERSION}:fake", "port": "8300"}
        return self._json(
            call,
            {
                "Config": {
                    "Datacenter": state.datacenter,
                    "PrimaryDatacenter": state.datacenter,
                    "NodeName": state.node_name,
                    "NodeID": state.node_id,
                    "Revision": "fake",
                    "Server": True,
                    "Version": CONSUL_VERSION,
                },
                "Member": {"Name": state.node_name, "Addr": "127.0.0.1", "Port": 8301, "Tags": tags, "Status": 1},
                "Meta": {},
            },
        )

    # -- sessions ------------------------------------------------------------------------------------------------

    def _session_id(self, call: _Call) -> str:
        if not call.rest:
            raise bad_request("Missing session")
        return call.rest

    def _session_create(self, call: _Call) -> Response:
        request = decode_session_request(call.request.body, self.state.node_name)
        call.require()  # session:write
        return self._json(call, {"ID": self.state.create_session(request)})

    def _session_destroy(self, call: _Call) -> Response:
        session_id = self._session_id(call)
        call.require()
        self.state.destroy_session(session_id)
        return self._json(call, True)

    def _session_renew(self, call: _Call) -> Response:
        session_id = self._session_id(call)
        call.require()
        return self._json(call, [self.state.renew_session(session_id).to_json()])

    def _sessions(self, call: _Call, query: Callable[[], tuple[int, list[Session]]]) -> Response:
        # Session reads are filtered by ACL rather than refused.
        index, sessions = self.state.blocking_query(call.min_index, call.wait, query, call.request.path)
        return self._json(call, [s.to_json() for s in sessions if call.allowed], _query_meta(index))

    def _session_info(self, call: _Call) -> Response:
        session_id = self._session_id(call)

        def query() -> tuple[int, list[Session]]:
            index, session = self.state.session_info(session_id)
            return index, [session] if session else []

        return self._sessions(call, query)

    def _session_node(self, call: _Call) -> Response:
        if not call.rest:
            raise bad_request("Missing node name")
        return self._sessions(call, lambda: self.state.node_sessions(call.rest))

    def _session_list(self, call: _Call) -> Response:
        return self._sessions(call, self.state.session_list)

    # -- KV ------------------------------------------------------------------------------------------------------

    def _kv(self, call: _Call) -> Response:
        method = call.request.method
        if method == "GET":
            return self._kv_keys(call) if call.request.has("keys") else self._kv_get(call)
        if method == "PUT":
            return self._kv_put(call)
        return self._kv_delete(call)

    def _kv_get(self, call: _Call) -> Response:
        key, request = call.rest, call.request
        entries: list[KVEntry]
        if request.has("recurse"):
            index, entries = self.state.blocking_query(
                call.min_index, call.wait, lambda: self.state.kv_list(key), call.request.path
            )
            filtered = bool(entries) and not call.allowed
            entries = entries if call.allowed else []
        else:
            if not key:
                raise bad_request("Missing key name")
            call.require()  # key:read
            index, entry = self.state.blocking_query(
                call.min_index, call.wait, lambda: self.state.kv_get(key), call.request.path
            )
            entries, filtered = ([entry] if entry else []), False
        meta = _query_meta(index, filtered)
        if not entries:
            return Response(404, headers=meta)
        if request.has("raw") and not request.has("recurse"):
            # Served as inert text so that a browser never runs a stored value.
            raw_headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}
            return Response(200, entries[0].value or b"", "text/plain", meta | raw_headers)
        return self._json(call, [e.to_json() for e in entries], meta)

    def _kv_keys(self, call: _Call) -> Response:
        # Consul still honours the historic misspelling "seperator"; "separator" wins when both are given.
        request = call.request
        separator = request.param("separator") if request.has("separator") else request.param("seperator")
        index, keys = self.state.blocking_query(
            call.min_index, call.wait, lambda: self.state.kv_keys(call.rest, separator), call.request.path
        )
        filtered = bool(keys) and not call.allowed
        keys = keys if call.allowed else []
        meta = _query_meta(index, filtered)
        if not keys and call.rest:  # an empty listing of the root is [], anything else is a 404
            return Response(404, headers=meta)
        return self._json(call, keys, meta)

    def _conflicting(self, request: Request, *flags: str) -> Response | None:
        if sum(request.has(flag) for flag in flags) > 1:
            encoded = urlencode(sorted((k, v) for k, values in request.query.items() for v in values))
            return _text(400, f"Conflicting flags: {encoded}\n")
        return None

    def _kv_put(self, call: _Call) -> Response:
        key, request = call.rest, call.request
        if not key:
            raise bad_request("Missing key name")
        conflict = self._conflicting(request, "cas", "acquire", "release")
        if conflict:
            return conflict
        flags = _parse_uint(request.param("flags")) if request.has("flags") else 0
        cas = _parse_uint(request.param("cas")) if request.has("cas") else None
        if len(request.body) > KV_MAX_VALUE_SIZE:
            return _text(
                413,
                f"Request body({len(request.body)} bytes) too large, max size: {KV_MAX_VALUE_SIZE} bytes. "
                "See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.",
            )
        call.require()  # key:write
        value = request.body or None
        if cas is not None:
            result = self.state.kv_cas(key, value, cas, flags)
        elif request.has("acquire"):
            result = self.state.kv_acquire(key, value, request.param("acquire"), flags)
        elif request.has("release"):
            result = self.state.kv_release(key, value, request.param("release"), flags)
        else:
            result = self.state.kv_put(key, value, flags)
        return self._json(call, result)

    def _kv_delete(self, call: _Call) -> Response:
        key, request = call.rest, call.request
        conflict = self._conflicting(request, "recurse", "cas")
        if conflict:
            return conflict
        if not request.has("recurse") and not key:
            raise bad_request("Missing key name")
        cas = _parse_uint(request.param("cas")) if request.has("cas") else None
        call.require()  # key:write
        if request.has("recurse"):
            result = self.state.kv_delete_tree(key)
        elif cas is not None:
            result = self.state.kv_delete_cas(key, cas)
        else:
            result = self.state.kv_delete(key)
        return self._json(call, result)


def _query_meta(index: int | None, filtered: bool = False) -> dict[str, str]:
    """Consul's setMeta headers for reads (none for writes)."""
    if index is None:
        return {}
    meta = {"X-Consul-Index": str(index), "X-Consul-KnownLeader": "true", "X-Consul-LastContact": "0"}
    if filtered:
        meta["X-Consul-Results-Filtered-By-ACLs"] = "true"
    return meta
