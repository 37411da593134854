"""One captured call: source fields, request snapshot and the capture's JSON encoding (DESIGN §3)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal

ApiName = Literal["anthropic.messages", "openai.chat", "openai.responses"]
SCHEMA_VERSION: Final = 1
MAX_REQUEST_ID_CHARS: Final = 128
MAX_ERROR_MESSAGE_CHARS: Final = 2000

# Keyword arguments of the SDK calls that are transport options, not part of the request body.
NOT_BODY: Final = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})
# The SDKs' "argument not given" sentinels (`NotGiven`, `Omit`), matched by name so the SDK stays unimported.
_SENTINEL_TYPES: Final = frozenset({"NotGiven", "Omit"})
_SOURCE_FIELDS: Final = ("service", "route", "environment", "conversation_id", "user_hash")


class TeeConfigError(ValueError):
    """A tee, sink or source was configured with a value it cannot use."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where a call came from; `service` is required, `user_hash` must never be a raw user id."""

    service: str
    route: str | None = None
    environment: str | None = None
    conversation_id: str | None = None
    user_hash: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.service, str) or not self.service:
            raise TeeConfigError(f"Source.service must be a non-empty string, got {self.service!r}")
        for key, value in self.tags.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TeeConfigError(f"Source.tags must map str to str, got {key!r}: {value!r}")

    def merged(self, overrides: Source | Mapping[str, Any]) -> Source:
        """This source with per-call fields laid over it (tags are merged, the call's win)."""
        fields = _source_fields(overrides)
        tags = fields.pop("tags", None)
        if tags is not None:
            fields["tags"] = {**self.tags, **tags}
        unknown = set(fields) - {*_SOURCE_FIELDS, "tags"}
        if unknown:
            raise TeeConfigError(
                f"tee_source accepts {(*_SOURCE_FIELDS, 'tags')}, got unknown {sorted(unknown)}"
            )
        return replace(self, **fields)

    def as_dict(self) -> dict[str, Any]:
        """The capture's `source` object, without unset fields."""
        out: dict[str, Any] = {"service": self.service}
        for name in _SOURCE_FIELDS[1:]:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.tags:
            out["tags"] = dict(self.tags)
        return out


def _source_fields(overrides: Source | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(overrides, Source):
        return {k: v for k, v in overrides.as_dict().items() if k != "tags"} | {"tags": dict(overrides.tags)}
    if isinstance(overrides, Mapping):
        return dict(overrides)
    raise TeeConfigError(f"tee_source must be a Source or a mapping, got {type(overrides).__name__}")


def hash_user(user_id: str, *, salt: str) -> str:
    """A stable, non-reversible `user_hash` for a raw user id (HMAC-SHA256 keyed by a secret salt)."""
    if not salt:
        raise TeeConfigError("hash_user needs a non-empty secret salt, got ''")
    return hmac.new(salt.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def _jsonable(value: object) -> object:
    """`json.dumps` fallback for SDK models and other objects callers put into requests."""
    to_dict = getattr(value, "model_dump", None)
    if callable(to_dict):
        return to_dict(mode="json", exclude_unset=True, by_alias=True)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Iterable) and not isinstance(value, str | Mapping):
        return list(value)
    return str(value)


def dumps(value: object) -> str:
    """Compact JSON; SDK models and other non-JSON values are converted, never rejected."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_jsonable)


def snapshot_request(kwargs: Mapping[str, Any], *, drop: frozenset[str], add: Mapping[str, Any]) -> str:
    """The request body as sent, encoded now so that later changes by the caller cannot alter it."""
    body = {
        key: value
        for key, value in kwargs.items()
        if key not in NOT_BODY and key not in drop and type(value).__name__ not in _SENTINEL_TYPES
    }
    extra = kwargs.get("extra_body")
    if isinstance(extra, Mapping):
        body.update(extra)
    body.update(add)
    return dumps(body)


def error_info(exc: BaseException) -> dict[str, Any]:
    """The capture's `error` object for an exception the production call raised."""
    status = getattr(exc, "status_code", None)
    return {
        "type": type(exc).__name__,
        "message": str(exc)[:MAX_ERROR_MESSAGE_CHARS],
        "status_code": status if isinstance(status, int) else None,
    }


ABANDONED_ERROR: Final[dict[str, Any]] = {
    "type": "StreamAbandoned",
    "message": "the caller closed the stream before its last event",
    "status_code": None,
}


@dataclass(slots=True)
class PendingCapture:
    """A finished call waiting in the queue; the worker thread turns it into bytes."""

    api: ApiName
    source: Source
    request_id: str | None
    started_at: float
    request_json: str
    extract: Callable[[Any], dict[str, Any]] | None
    result: Any
    ttft_ms: float | None
    latency_ms: float
    error: dict[str, Any] | None

    def encode(self) -> tuple[bytes, bytes]:
        """(key, value) of the Kafka message: key = request_id, value = the capture JSON in UTF-8."""
        request_id = self.request_id or uuid.uuid4().hex
        response: dict[str, Any] = {"text": None, "stop_reason": None, "usage": None, "tool_calls": []}
        if self.extract is not None:
            response.update(self.extract(self.result))
            if response["usage"] is None:  # the answer came without usage: say so, never guess a count
                response["usage_status"] = "absent"
        response["ttft_ms"] = self.ttft_ms
        response["latency_ms"] = self.latency_ms
        response["error"] = self.error
        head = dumps(
            {
                "schema_version": SCHEMA_VERSION,
                "request_id": request_id,
                "captured_at": rfc3339(self.started_at),
                "source": self.source.as_dict(),
                "api": self.api,
            }
        )
        text = f'{head[:-1]},"request":{self.request_json},"response":{dumps(response)}}}'
        return request_id.encode(), text.encode("utf-8", "replace")


def rfc3339(epoch_seconds: float) -> str:
    """RFC 3339 UTC time with an explicit offset, e.g. 2025-01-02T03:04:05.678901+00:00."""
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="microseconds")


def check_request_id(request_id: object) -> str:
    """A caller-given request id, validated against the schema's limits."""
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS:
        raise TeeConfigError(
            f"tee_request_id must be a string of 1..{MAX_REQUEST_ID_CHARS} chars, got {request_id!r}"
        )
    return request_id


def now() -> float:
    """Wall-clock seconds (only for `captured_at`; durations use the monotonic clock)."""
    return time.time()
