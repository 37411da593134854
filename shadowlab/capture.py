"""Capture schema v1 (DESIGN §3): the envelope, parsing with dead-letter reasons, and the JSON Schema.

The request bodies are modelled in `shadowlab.api_requests`, their normalisation in `shadowlab.normalize`,
token usage in `shadowlab.usage`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    Tag,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from shadowlab.api_requests import AnthropicMessagesRequest, ApiRequest, OpenAIChatRequest
from shadowlab.errors import ShadowlabError

# fmt: off
__all__ = [
    "API_NAMES", "DEFAULT_MAX_BYTES", "SCHEMA_VERSION", "Api", "Capture", "CaptureError", "CaptureErrorCode",
    "OverflowFloat", "ProductionResponse", "Source", "capture_from_dict", "capture_json_schema",
    "decode_capture_bytes", "parse_capture_bytes", "validate_request_body",
]
# fmt: on

SCHEMA_VERSION = 1
DEFAULT_MAX_BYTES = 900 * 1024
Api = Literal["anthropic.messages", "openai.chat"]
API_NAMES: tuple[Api, ...] = ("anthropic.messages", "openai.chat")
CaptureErrorCode = Literal[
    "not_utf8",
    "not_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "unknown_schema_version",
    "unknown_api",
    "too_large",
    "invalid_value",
]


class CaptureError(ShadowlabError, ValueError):
    """A refused capture: `code` is the DLQ machine code, `detail` names the field and what was expected."""

    exit_code = 2

    def __init__(self, field: str, expected: str, found: str, code: CaptureErrorCode) -> None:
        self.field, self.expected, self.found, self.code = field, expected, found, code
        super().__init__(f"{code}: {self.detail}")

    @property
    def detail(self) -> str:
        return f"{self.field}: expected {self.expected}, found {self.found}"


_REQUEST_MODELS: dict[str, type[ApiRequest]] = {
    "anthropic.messages": AnthropicMessagesRequest,
    "openai.chat": OpenAIChatRequest,
}
_API: ContextVar[str | None] = ContextVar("shadowlab_capture_api", default=None)


def _request_tag(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return "~anthropic.messages" if isinstance(value, AnthropicMessagesRequest) else "~openai.chat"
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
    request: Annotated[
        Annotated[AnthropicMessagesRequest, Tag("~anthropic.messages")]
        | Annotated[OpenAIChatRequest, Tag("~openai.chat")],
        Discriminator(
            _request_tag,
            custom_error_type="invalid_value",
            custom_error_message="Input should be a request body, shaped by a known `api`",
        ),
    ] = Field(description="The request body as sent (never headers or keys); unknown fields are kept.")
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
_MESSAGE = "(message)"


def parse_capture_bytes(raw: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Capture:
    """Parse one Kafka message value; any failure is a CaptureError whose code ingest dead-letters with."""
    return capture_from_dict(decode_capture_bytes(raw, max_bytes))


def decode_capture_bytes(raw: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """The JSON object of one message value, not yet validated (`too_large`, `not_utf8`, `not_json`,
    `not_object`); ingest keeps it to store the capture as sent, `capture_from_dict` validates it."""
    if len(raw) > max_bytes:
        raise CaptureError(_MESSAGE, f"at most {max_bytes} bytes", f"{len(raw)} bytes", "too_large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        found = f"byte 0x{raw[exc.start]:02x} at offset {exc.start}"
        raise CaptureError(_MESSAGE, "UTF-8 text", found, "not_utf8") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_float)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise CaptureError(_MESSAGE, "a JSON document", str(exc) or type(exc).__name__, "not_json") from None
    if not isinstance(data, dict):
        raise CaptureError(_MESSAGE, "a JSON object", _describe(data), "not_object")
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class OverflowFloat(float):
    """A JSON number beyond a double (`1e400`): ±inf as `json` reads it, typed so that a fast serializer
    which would write it as `null` (orjson) refuses it instead of changing the value."""


def _float(text: str) -> float:
    value = float(text)
    return value if value - value == 0 else OverflowFloat(value)


def capture_from_dict(data: Any) -> Capture:
    """Validate decoded JSON as a capture, raising CaptureError (the schema version is checked first)."""
    if not isinstance(data, dict):
        raise CaptureError(_MESSAGE, "a JSON object", _describe(data), "not_object")
    version = data.get("schema_version", _MISSING)
    if version is _MISSING:
        raise CaptureError("schema_version", "a value (required)", "nothing", "missing_field")
    if type(version) is not int:
        raise CaptureError("schema_version", "an integer", _describe(version), "wrong_type")
    if version != SCHEMA_VERSION:
        raise CaptureError("schema_version", str(SCHEMA_VERSION), str(version), "unknown_schema_version")
    return _validate(Capture, data, "")


def validate_request_body(api: str, body: Any) -> ApiRequest:
    """A stored request body validated against the model of its `api`; CaptureError paths start `request`."""
    model = _REQUEST_MODELS.get(api)
    if model is None:
        raise CaptureError("api", " or ".join(API_NAMES), _describe(api), "unknown_api")
    return body if isinstance(body, model) else _validate(model, body, "request")


_MISSING = object()
_M = TypeVar("_M", bound=BaseModel)
_CODES: dict[str, CaptureErrorCode] = {
    "missing": "missing_field",
    "missing_field": "missing_field",
    "invalid_value": "invalid_value",
    "int_parsing": "wrong_type",
    "float_parsing": "wrong_type",
    "bool_parsing": "wrong_type",
    "int_from_float": "wrong_type",
}


def _validate(model: type[_M], data: Any, prefix: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # An unknown api makes the request union fail too: report the cause, not its consequence.
        api_errors = [e for e in errors if e["loc"][:1] == ("api",)]
        more = 0 if api_errors else len(errors) - 1
        raise _capture_error((api_errors or errors)[0], prefix, more) from None


def _capture_error(error: ErrorDetails, prefix: str, more: int) -> CaptureError:
    kind, loc = error["type"], error["loc"]
    code = _CODES.get(kind) or ("wrong_type" if kind.endswith("_type") else "invalid_value")
    if kind == "literal_error" and loc in (("api",), ("schema_version",)):
        code = "unknown_api" if loc == ("api",) else "unknown_schema_version"
    if kind == "missing":
        expected, found = "a value (required)", "nothing"
    else:
        expected, found = _expected(error["msg"]), _describe(error["input"])
    more_errors = f" (+{more} more error{'s' if more > 1 else ''})" if more else ""
    return CaptureError(_path(loc, prefix), expected, found + more_errors, code)


def _path(loc: tuple[int | str, ...], prefix: str) -> str:
    out = prefix
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
        elif not item.startswith("~"):  # union tags, see `_by_type`
            out += f".{item}" if out else item
    return out or _MESSAGE


def _expected(msg: str) -> str:
    """pydantic's "Input should be a valid list" as "an array": JSON words for whoever reads the DLQ."""
    tail = msg.split(" should ", 1)[-1].removeprefix("be ").removeprefix("have ")
    if tail.startswith("a valid dictionary"):
        return "an object"
    return {"a valid list": "an array", "a valid string": "a string", "a valid integer": "an integer"}.get(
        tail, tail
    )


def _describe(value: Any) -> str:
    """What was found, short and without echoing long content (it may be personal data)."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return f"an array of {len(value)} items"
    if isinstance(value, str) and len(value) > 32:
        return f"a string of {len(value)} characters"
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return type(value).__name__
