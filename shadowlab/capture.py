"""Capture schema v1 (DESIGN §3): the envelope, parsing with dead-letter reasons, and the JSON Schema.

The request bodies of each API, their normalisation and usage are in `shadowlab.apis` (one module per API);
the error a refused capture raises in `shadowlab.capture_errors`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import msgspec
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shadowlab.apis import API_NAMES, Api, api_of_request, request_models
from shadowlab.apis.wire import WireRequest
from shadowlab.capture_errors import MESSAGE, CaptureError, CaptureErrorCode, describe, validate_as
from shadowlab.capture_fast import FastCapture, fast_capture

# fmt: off
__all__ = [
    "DEFAULT_MAX_BYTES", "SCHEMA_VERSION", "Capture", "CaptureError", "CaptureErrorCode", "OverflowFloat",
    "CaptureView", "ProductionResponse", "Source", "capture_from_dict", "capture_json_schema", "capture_text",
    "capture_view_from_dict", "decode_capture_bytes", "decode_capture_text", "parse_capture_bytes",
]
# fmt: on

SCHEMA_VERSION = 1
DEFAULT_MAX_BYTES = 900 * 1024
_API: ContextVar[str | None] = ContextVar("shadowlab_capture_api", default=None)


def _request_tag(value: Any) -> str | None:
    if isinstance(value, WireRequest):
        known = api_of_request(value)
        return None if known is None else f"~{known}"
    api = _API.get()  # set by Capture._request_by_api: a union member chosen by a sibling field
    return f"~{api}" if api in API_NAMES else None


# `captured_at` must be a time every reader can hold: `9999-12-31T23:59:59-14:00` is year 10000 in UTC
# (the Label page failed on it, retention never deleted it). A producer's clock may run a little ahead.
EARLIEST_CAPTURED_AT = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_AHEAD = timedelta(days=1)


def _rfc3339(value: Any) -> Any:
    if not isinstance(value, str):
        if isinstance(value, datetime):
            return _in_range(value) if value.tzinfo else value  # naive: AwareDatetime refuses it
        return _raise("wrong_type", "an RFC 3339 time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return _raise("invalid_value", "an RFC 3339 time with offset, such as 2025-01-31T12:00:00Z")
    if not parsed.tzinfo:
        return _raise("invalid_value", "a time with a UTC offset, not a naive time")
    return _in_range(parsed)


def _in_range(at: datetime) -> Any:
    """`at` when it lies from 2000-01-01 UTC to one day after now (compared without converting to UTC)."""
    latest = datetime.now(UTC) + MAX_CLOCK_AHEAD
    if EARLIEST_CAPTURED_AT <= at <= latest:
        return at
    return _raise(
        "invalid_value",
        f"a time from 2000-01-01T00:00:00Z to one day after now ({latest:%Y-%m-%dT%H:%M:%SZ})",
    )


def _raise(code: CaptureErrorCode, expected: str) -> Any:
    raise PydanticCustomError(code, f"Input should be {expected}")


if TYPE_CHECKING:
    _RequestBody = WireRequest
else:  # one member per registered API (`shadowlab.apis`), chosen by the sibling field `api`
    _MEMBERS = tuple(Annotated[model, Tag(f"~{api}")] for api, model in request_models())
    _RequestBody = Annotated[
        Union[_MEMBERS],  # noqa: UP007 (a union built from a tuple)
        Discriminator(
            _request_tag,
            custom_error_type="invalid_value",
            custom_error_message="Input should be a request body, shaped by a known `api`",
        ),
    ]


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, strict=True)


class Source(_Envelope):
    """Where a capture came from; `user_hash` is a hash, never a raw user id."""

    service: str = Field(min_length=1, description="Name of the production service that made the call.")
    route: str | None = Field(default=None, description="Route or feature within the service.")
    environment: str | None = None
    conversation_id: str | None = Field(default=None, description="Groups turns of one conversation.")
    user_hash: str | None = Field(default=None, description="Hash of the end user id (never the raw id).")
    tags: dict[str, str] = Field(default_factory=dict, description="Free-form string labels.")


class ProductionResponse(_Envelope):
    """What production got back; `usage` is kept exactly as the API reported it."""

    text: str | None = None
    stop_reason: str | None = None
    usage: dict[str, Any] | None = Field(default=None, description="The API's usage object, unchanged.")
    usage_status: Literal["reported", "absent"] | None = Field(
        default=None,
        description="'absent': the API sent no usage (an OpenAI stream without stream_options.include_usage, "
        "a stream cut before its usage): a null `usage` is unknown, not zero. Unset or 'reported': as sent.",
    )
    ttft_ms: float | None = Field(default=None, ge=0, description="Time to first token, milliseconds.")
    latency_ms: float | None = Field(default=None, ge=0, description="Time to last token, milliseconds.")
    error: Any = Field(default=None, description="The error production got, as a string or the API's object.")
    tool_calls: list[dict[str, Any]] | None = None


class Capture(_Envelope):
    """One captured production LLM call: one Kafka message, keyed by `request_id` (schema v1)."""

    schema_version: Literal[1] = Field(description="Capture schema version; others are dead-lettered.")
    request_id: str = Field(min_length=1, max_length=128, description="Idempotency key, at most 128 chars.")
    captured_at: Annotated[AwareDatetime, BeforeValidator(_rfc3339)] = Field(
        description="RFC 3339 time with offset."
    )
    source: Source
    api: Api = Field(description="Which API shape `request` has.")
    request: _RequestBody = Field(
        description="The request body as sent (never headers or keys); unknown fields are kept."
    )
    response: ProductionResponse | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _request_by_api(cls, data: Any, handler: ModelWrapValidatorHandler[Capture]) -> Capture:
        with _api_context(data.get("api") if isinstance(data, dict) else None):
            return handler(data)

    def to_json_dict(self) -> dict[str, Any]:
        """The capture as JSON-ready data, with the fields it was given and only those (unknown ones too)."""
        return self.model_dump(mode="json", exclude_unset=True)


@contextmanager
def _api_context(api: Any) -> Iterator[None]:
    token = _API.set(api if isinstance(api, str) else None)
    try:
        yield
    finally:
        _API.reset(token)


def capture_json_schema() -> dict[str, Any]:
    """JSON Schema of a capture message (both request shapes under `request`)."""
    schema: dict[str, Any] = _any_of(Capture.model_json_schema())
    return schema


def _any_of(node: Any) -> Any:
    # Callable discriminators render as oneOf, but an unknown block also matches the catch-all member.
    if isinstance(node, dict):
        return {("anyOf" if k == "oneOf" else k): _any_of(v) for k, v in node.items()}
    return [_any_of(v) for v in node] if isinstance(node, list) else node


# --- parsing with dead-letter reasons ------------------------------------------------------------------


def parse_capture_bytes(raw: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Capture:
    """Parse one Kafka message value; any failure is a CaptureError whose code ingest dead-letters with."""
    return capture_from_dict(decode_capture_bytes(raw, max_bytes))


def decode_capture_bytes(raw: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """The JSON object of one message value, not yet validated (`too_large`, `not_utf8`, `not_json`,
    `not_object`); ingest keeps it to store the capture as sent, `capture_from_dict` validates it."""
    return decode_capture_text(capture_text(raw, max_bytes))


def capture_text(raw: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """One message value as text (`too_large`, `not_utf8`): what `decode_capture_text` reads."""
    if len(raw) > max_bytes:
        raise CaptureError(MESSAGE, f"at most {max_bytes} bytes", f"{len(raw)} bytes", "too_large")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        found = f"byte 0x{raw[exc.start]:02x} at offset {exc.start}"
        raise CaptureError(MESSAGE, "UTF-8 text", found, "not_utf8") from None


def decode_capture_text(text: str) -> dict[str, Any]:
    """The JSON object of a message's text, not yet validated (`not_json`, `not_object`, `invalid_value`)."""
    fast = _msgspec_object(text)
    return fast if fast is not None else _json_object(text)


def _json_object(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_float)
    except UnderflowError:
        expected, found = "numbers a 64-bit float can hold", "a nonzero number that would be stored as 0"
        raise CaptureError(MESSAGE, expected, found, "invalid_value") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise CaptureError(MESSAGE, "a JSON document", str(exc) or type(exc).__name__, "not_json") from None
    if not isinstance(data, dict):
        raise CaptureError(MESSAGE, "a JSON object", describe(data), "not_object")
    return data


def _msgspec_object(text: str) -> dict[str, Any] | None:
    """The JSON object `text` holds, decoded by msgspec (a third of `json.loads`' CPU) with the same float
    reader, so to the same values; None leaves it to `json.loads`, which also words the errors: whatever
    msgspec refuses (all that `json.loads` refuses, and lone surrogates), anything but an object, and a
    text that may nest deep (msgspec goes a few levels deeper than `json.loads` before RecursionError)."""
    if text.count("[") + text.count("{") >= _MSGSPEC_MAX_OPENINGS:
        return None
    try:
        data = _msgspec_decode(text)
    except (msgspec.DecodeError, RecursionError):  # a ValidationError too: the float reader refused
        return None
    return data if type(data) is dict else None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class OverflowFloat(float):
    """A JSON number beyond a double (`1e400`): ±inf as `json` reads it, typed so that a fast serializer
    which would write it as `null` (orjson) refuses it instead of changing the value."""


class UnderflowError(ValueError):
    """A nonzero JSON number below the smallest double (`1e-400`): it would be stored as 0, silently."""


_NONZERO_DIGITS = frozenset("123456789")


def _float(text: str) -> float:
    value = float(text)
    if value == 0.0 and not _NONZERO_DIGITS.isdisjoint(text.partition("e")[0].partition("E")[0]):
        raise UnderflowError(text)
    return value if value - value == 0 else OverflowFloat(value)


_msgspec_decode = msgspec.json.Decoder(float_hook=_float).decode
_MSGSPEC_MAX_OPENINGS = 500  # far below the nesting `json.loads` reaches from ingest's stack (~950)


def capture_from_dict(data: Any) -> Capture:
    """Validate decoded JSON as a capture, raising CaptureError (the schema version is checked first)."""
    if not isinstance(data, dict):
        raise CaptureError(MESSAGE, "a JSON object", describe(data), "not_object")
    version = data.get("schema_version", _MISSING)
    if version is _MISSING:
        raise CaptureError("schema_version", "a value (required)", "nothing", "missing_field")
    if type(version) is not int:
        raise CaptureError("schema_version", "an integer", describe(version, safe=True), "wrong_type")
    if version != SCHEMA_VERSION:
        raise CaptureError("schema_version", str(SCHEMA_VERSION), str(version), "unknown_schema_version")
    return validate_as(Capture, data, "")


_MISSING = object()

# A validated capture as ingest reads it: the model, or the fast path's fields with the same values.
CaptureView = Capture | FastCapture


def capture_view_from_dict(data: Any) -> CaptureView:
    """`capture_from_dict`, through the structural fast path (`shadowlab.capture_fast`) when the capture has
    a common shape: it accepts only what the model accepts, with the same values; errors are the model's."""
    if isinstance(data, dict) and (fast := fast_capture(data, _rfc3339)) is not None:
        return fast
    return capture_from_dict(data)
