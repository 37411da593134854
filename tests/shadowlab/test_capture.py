"""Capture schema v1: real request bodies parse, failures get dead-letter codes and field paths."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shadowlab.apis import validate_request_body
from shadowlab.apis.anthropic_wire import AnthropicMessagesRequest
from shadowlab.apis.openai_chat_wire import OpenAIChatRequest
from shadowlab.apis.wire import OtherKind
from shadowlab.capture import (
    Capture,
    CaptureError,
    OverflowFloat,
    _json_object,
    capture_from_dict,
    capture_json_schema,
    decode_capture_bytes,
    decode_capture_text,
    parse_capture_bytes,
)

DATA = Path(__file__).parent / "data"
BODIES = sorted(p.stem for p in DATA.glob("*.json"))


def body(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return loaded


def capture_dict(name: str = "anthropic_tool_use", **fields: Any) -> dict[str, Any]:
    api = "anthropic.messages" if name.startswith("anthropic") else "openai.chat"
    base = {
        "schema_version": 1,
        "request_id": "req-0001",
        "captured_at": "2025-03-14T09:26:53.589793+01:00",
        "source": {"service": "checkout", "route": "/chat", "tags": {"team": "ml"}},
        "api": api,
        "request": body(name),
        "response": {
            "text": "It is 15 degrees.",
            "stop_reason": "end_turn",
            "ttft_ms": 412.5,
            "latency_ms": 1830,
        },
    }
    return base | fields


def encode(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


@pytest.mark.parametrize("name", BODIES)
def test_real_request_bodies_parse_into_their_api_model(name: str) -> None:
    capture = parse_capture_bytes(encode(capture_dict(name)))
    expected = AnthropicMessagesRequest if name.startswith("anthropic") else OpenAIChatRequest
    assert type(capture.request) is expected
    assert capture.request.model == body(name)["model"]
    offset = capture.captured_at.utcoffset()
    assert offset is not None and offset.total_seconds() == 3600


@pytest.mark.parametrize("name", BODIES)
def test_a_capture_round_trips_unchanged(name: str) -> None:
    data = capture_dict(name)
    assert parse_capture_bytes(encode(data)).to_json_dict() == data


def test_unknown_fields_survive_a_round_trip_at_every_level() -> None:
    data = capture_dict("anthropic_thinking_tools")
    data["future_top_level"] = {"x": 1}
    data["source"]["region"] = "eu-west-1"
    data["request"]["service_tier"] = "auto"
    data["request"]["context_management"] = {"edits": [{"type": "clear_thinking_20251015"}]}
    data["request"]["messages"][1]["content"][1]["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
    data["request"]["messages"][0]["content"] = [
        {"type": "search_result", "source": "https://example.com", "title": "t", "content": []}
    ]
    data["response"]["provider_request_id"] = "msg_01"
    capture = parse_capture_bytes(encode(data))
    assert capture.to_json_dict() == data
    assert capture.model_dump(mode="json", exclude_unset=True) == data
    assert isinstance(capture.request, AnthropicMessagesRequest)
    assert isinstance(capture.request.messages[0].content[0], OtherKind)


def test_json_integers_for_float_fields_and_utc_z_times_are_accepted() -> None:
    data = capture_dict("openai_reasoning", captured_at="2025-03-14T08:26:53Z")
    data["request"]["temperature"] = 1
    capture = parse_capture_bytes(encode(data))
    assert isinstance(capture.request, OpenAIChatRequest) and capture.request.temperature == 1.0
    assert capture.captured_at.isoformat() == "2025-03-14T08:26:53+00:00"


def mutate(change: Callable[[dict[str, Any]], object], name: str = "anthropic_tool_use") -> bytes:
    data = copy.deepcopy(capture_dict(name))
    change(data)
    return encode(data)


def _unset(path: list[str | int]) -> Callable[[dict[str, Any]], object]:
    def change(data: dict[str, Any]) -> None:
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


def _set(path: list[str | int], value: Any) -> Callable[[dict[str, Any]], object]:
    def change(data: dict[str, Any]) -> None:
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


ERROR_CASES: list[tuple[str, bytes, str, str]] = [
    ("not_utf8", b'{"schema_version": 1, "request_id": "caf\xe9"}', "(message)", "UTF-8"),
    ("not_json", b'{"schema_version": 1,', "(message)", "JSON"),
    ("not_json", b'{"schema_version": NaN}', "(message)", "JSON"),
    ("not_object", b'[{"schema_version": 1}]', "(message)", "JSON object"),
    ("not_object", b'"capture"', "(message)", "JSON object"),
    ("missing_field", mutate(_unset(["schema_version"])), "schema_version", "required"),
    ("missing_field", mutate(_unset(["source", "service"])), "source.service", "required"),
    ("missing_field", mutate(_unset(["request", "max_tokens"])), "request.max_tokens", "required"),
    (
        "missing_field",
        mutate(_unset(["request", "messages", 2, "content", 0, "tool_use_id"])),
        "request.messages[2].content[0].tool_use_id",
        "required",
    ),
    (
        "missing_field",
        mutate(_unset(["request", "messages", 1, "content", 0, "type"])),
        "request.messages[1].content[0].type",
        "required",
    ),
    ("wrong_type", mutate(_set(["schema_version"], "1")), "schema_version", "integer"),
    ("wrong_type", mutate(_set(["request", "messages"], {"role": "user"})), "request.messages", "an array"),
    (
        "wrong_type",
        mutate(_set(["request", "messages", 2, "content", 0, "type"], 7)),
        "request.messages[2].content[0].type",
        "string",
    ),
    (
        "wrong_type",
        mutate(_set(["request", "messages", 0, "content"], 42)),
        "request.messages[0].content",
        "list",
    ),
    ("wrong_type", mutate(_set(["request", "max_tokens"], "1024")), "request.max_tokens", "integer"),
    ("wrong_type", mutate(_set(["captured_at"], 1741940813)), "captured_at", "RFC 3339"),
    ("wrong_type", mutate(_set(["source", "tags", "team"], 5)), "source.tags.team", "string"),
    ("wrong_type", mutate(_set(["request"], [])), "request", "an object"),
    ("unknown_schema_version", mutate(_set(["schema_version"], 2)), "schema_version", "1"),
    ("unknown_schema_version", mutate(_set(["schema_version"], 0)), "schema_version", "1"),
    ("unknown_api", mutate(_set(["api"], "gemini.generate")), "api", "'openai.chat'"),
    ("invalid_value", mutate(_set(["request_id"], "r" * 129)), "request_id", "128"),
    ("invalid_value", mutate(_set(["request_id"], "")), "request_id", "at least 1"),
    ("invalid_value", mutate(_set(["captured_at"], "2025-03-14T09:26:53")), "captured_at", "offset"),
    ("invalid_value", mutate(_set(["captured_at"], "last tuesday")), "captured_at", "RFC 3339"),
    (
        "invalid_value",
        mutate(_set(["request", "messages", 0, "role"], "system")),
        "request.messages[0].role",
        "'user'",
    ),
    (
        "invalid_value",
        mutate(_set(["response", "ttft_ms"], -1)),
        "response.ttft_ms",
        "greater than or equal to 0",
    ),
    (
        "invalid_value",
        mutate(_set(["request", "messages", 1, "role"], "function"), "openai_tools"),
        "request.messages[1].role",
        "'developer'",
    ),
    (
        "invalid_value",
        mutate(
            _set(["request", "messages", 2, "tool_calls", 1, "function", "arguments"], '{"location": '),
            "openai_tools",
        ),
        "request.messages[2].tool_calls[1].function.arguments",
        "JSON object",
    ),
    (
        "invalid_value",
        mutate(
            _set(["request", "messages", 2, "tool_calls", 0, "function", "arguments"], "[1, 2]"),
            "openai_tools",
        ),
        "request.messages[2].tool_calls[0].function.arguments",
        "not an object",
    ),
    (
        "invalid_value",
        mutate(_set(["request", "tool_choice"], "sometimes"), "openai_tools"),
        "request.tool_choice",
        "'auto'",
    ),
    (
        "missing_field",
        mutate(_set(["request", "tool_choice"], {"type": "tool"})),
        "request.tool_choice.name",
        "required",
    ),
]


@pytest.mark.parametrize(("code", "raw", "field", "expected"), ERROR_CASES)
def test_each_failure_is_a_capture_error_with_code_and_field(
    code: str, raw: bytes, field: str, expected: str
) -> None:
    with pytest.raises(CaptureError) as caught:
        parse_capture_bytes(raw)
    assert (caught.value.code, caught.value.field) == (code, field)
    assert expected in caught.value.expected
    assert caught.value.detail == f"{field}: expected {caught.value.expected}, found {caught.value.found}"
    assert str(caught.value).startswith(f"{code}: {field}: expected ")


def test_too_large_is_checked_before_anything_else() -> None:
    raw = encode(capture_dict())
    assert parse_capture_bytes(raw, max_bytes=len(raw)).request_id == "req-0001"
    with pytest.raises(CaptureError) as caught:
        parse_capture_bytes(raw + b"\xff", max_bytes=len(raw))
    assert (caught.value.code, caught.value.field) == ("too_large", "(message)")
    assert (
        caught.value.found == f"{len(raw) + 1} bytes" and caught.value.expected == f"at most {len(raw)} bytes"
    )


def test_default_size_limit_is_900_kib() -> None:
    data = capture_dict()
    data["request"]["messages"][0]["content"] = "x" * (900 * 1024)
    with pytest.raises(CaptureError) as caught:
        parse_capture_bytes(encode(data))
    assert caught.value.code == "too_large"


def test_a_future_schema_version_is_never_guessed_even_if_the_rest_is_valid_v1() -> None:
    with pytest.raises(CaptureError) as caught:
        parse_capture_bytes(mutate(_set(["schema_version"], 2)))
    assert caught.value.code == "unknown_schema_version" and caught.value.found == "2"


def test_unknown_api_reports_the_api_not_the_request_it_cannot_shape() -> None:
    with pytest.raises(CaptureError) as caught:
        parse_capture_bytes(mutate(_set(["api"], "gemini.generate")))
    assert caught.value.found == '"gemini.generate"'


def test_found_describes_long_text_without_echoing_it() -> None:
    secret = "my card is 4111 1111 1111 1111, call me at 555 0100"
    with pytest.raises(CaptureError) as caught:
        parse_capture_bytes(mutate(_set(["request", "messages", 0, "role"], secret)))
    assert "4111" not in str(caught.value) and f"a string of {len(secret)} characters" in caught.value.found


def test_several_errors_name_the_first_and_count_the_rest() -> None:
    def two_errors(data: dict[str, Any]) -> None:
        del data["request_id"]
        data["source"]["service"] = ""

    with pytest.raises(CaptureError) as caught:
        parse_capture_bytes(mutate(two_errors))
    assert caught.value.field == "request_id" and caught.value.found.endswith("(+1 more error)")


def test_capture_from_dict_and_model_validate_agree() -> None:
    data = capture_dict("openai_tools")
    assert capture_from_dict(data) == Capture.model_validate(data)


def test_request_body_validation_for_stored_bodies() -> None:
    request = validate_request_body("openai.chat", body("openai_vision"))
    assert isinstance(request, OpenAIChatRequest) and request.max_tokens == 300
    assert validate_request_body("openai.chat", request) is request
    with pytest.raises(CaptureError) as caught:
        validate_request_body("anthropic.messages", body("openai_reasoning"))
    assert (caught.value.code, caught.value.field) == ("missing_field", "request.max_tokens")
    with pytest.raises(CaptureError) as caught:
        validate_request_body("cohere.chat", {})
    assert (caught.value.code, caught.value.field) == ("unknown_api", "api")


def test_captures_are_frozen() -> None:
    capture = parse_capture_bytes(encode(capture_dict()))
    with pytest.raises(ValueError, match="frozen"):
        capture.request_id = "other"  # type: ignore[misc]


def test_json_schema_describes_every_request_shape() -> None:
    schema = capture_json_schema()
    refs = {option["$ref"] for option in schema["properties"]["request"]["anyOf"]}
    assert refs == {
        "#/$defs/AnthropicMessagesRequest",
        "#/$defs/OpenAIChatRequest",
        "#/$defs/OpenAIResponsesRequest",
    }
    assert set(schema["required"]) == {
        "schema_version",
        "request_id",
        "captured_at",
        "source",
        "api",
        "request",
    }
    assert schema["properties"]["captured_at"]["description"] == "RFC 3339 time with offset."
    assert "Anthropic Messages" in schema["$defs"]["AnthropicMessagesRequest"]["description"]
    assert "oneOf" not in json.dumps(schema) and "~" not in json.dumps(schema)


def test_absent_usage_is_marked_and_validates_in_the_schema_and_the_parser() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = capture_json_schema()
    absent = capture_dict("openai_reasoning")
    absent["response"] |= {"usage": None, "usage_status": "absent"}
    jsonschema.validate(absent, schema)
    response = parse_capture_bytes(encode(absent)).response
    assert response is not None and response.usage is None and response.usage_status == "absent"
    guessed = copy.deepcopy(absent)
    guessed["response"]["usage_status"] = "guessed"
    with pytest.raises(CaptureError) as caught:
        parse_capture_bytes(encode(guessed))
    assert caught.value.code == "invalid_value" and "usage_status" in caught.value.field
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(guessed, schema)


@pytest.mark.parametrize("name", BODIES)
def test_json_schema_accepts_the_real_captures(name: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(capture_dict(name), capture_json_schema())


def test_decode_gives_the_json_object_as_sent_and_parse_validates_it() -> None:
    data = capture_dict("openai_reasoning")
    data["request"]["temperature"] = 1  # an int stays an int: nothing is re-dumped from the model
    raw = encode(data)
    decoded = decode_capture_bytes(raw)
    assert decoded == data and type(decoded["request"]["temperature"]) is int
    assert capture_from_dict(decoded) == parse_capture_bytes(raw)


@pytest.mark.parametrize(("code", "raw"), [(c, r) for c, r, f, _ in ERROR_CASES if f == "(message)"])
def test_decode_refuses_what_is_not_a_json_object_with_the_same_codes(code: str, raw: bytes) -> None:
    with pytest.raises(CaptureError) as caught:
        decode_capture_bytes(raw)
    assert (caught.value.code, caught.value.field) == (code, "(message)")
    with pytest.raises(CaptureError) as caught_by_parse:
        parse_capture_bytes(raw)
    assert str(caught_by_parse.value) == str(caught.value)


def test_decode_checks_the_size_before_decoding() -> None:
    with pytest.raises(CaptureError) as caught:
        decode_capture_bytes(b"\xff" * 11, max_bytes=10)
    assert caught.value.code == "too_large"


def test_a_number_beyond_a_double_decodes_as_an_overflow_float() -> None:
    raw = encode(capture_dict()).replace(b'"ttft_ms": 412.5', b'"ttft_ms": 1e400')
    decoded = decode_capture_bytes(raw)
    value = decoded["response"]["ttft_ms"]
    assert isinstance(value, OverflowFloat) and value == float("inf")
    assert type(decode_capture_bytes(encode(capture_dict()))["response"]["ttft_ms"]) is float
    assert parse_capture_bytes(raw).response is not None  # still a valid capture, as before


# What msgspec and json.loads might read differently: they must give the same object, or the same error.
DECODE_EDGES = [
    '{"a": 1e400, "b": -1e400, "c": 1e-400}', '{"a": 1e-400}', '{"a": NaN}', '{"a": Infinity}',
    '{"a": 123456789012345678901234567890, "b": -9223372036854775809}', '{"a": ' + "1" * 4301 + "}",
    '{"a": "\\ud800"}', '{"a": 1, "b": 2, "a": 3}', '{"a": "x\x01y"}', "\ufeff{}", '{"a": 1} x', "[1]",
    '{"a": 01}', '{"a": 1.}', '{"a": -0, "b": -0.0, "c": 2.50E3, "d": "\\u00e9\\/"}', '{"a":\t1\n}',
    '{"a": ' + "[" * 499 + "]" * 499 + "}", '{"a": ' + "[" * 990 + "]" * 990 + "}",
    '{"a": ' + "{" * 2000 + "}" * 2000 + "}",
]  # fmt: skip


@pytest.mark.parametrize("text", DECODE_EDGES)
def test_decoding_by_msgspec_gives_what_json_loads_gives(text: str) -> None:
    def outcome(decode: Callable[[str], Any]) -> Any:
        try:
            data = decode(text)
        except CaptureError as exc:
            return exc.code, exc.detail
        return json.dumps(data), {type(v) for v in data.values()}  # OverflowFloat stays itself

    assert outcome(decode_capture_text) == outcome(_json_object)


RANGE = "a time from 2000-01-01T00:00:00Z to one day after now"


@pytest.mark.parametrize(
    "captured_at",
    [
        "9999-12-31T23:59:59-14:00",  # year 10000 in UTC: unreadable once stored
        "0001-01-01T00:00+14:00",  # year 0 in UTC
        "1999-12-31T23:59:59.999999Z",
        "2000-01-01T05:59:59+06:00",  # 1999-12-31T23:59:59Z
    ],
)
def test_captured_at_out_of_range_is_an_invalid_value_naming_the_range(captured_at: str) -> None:
    with pytest.raises(CaptureError) as caught:
        capture_from_dict(capture_dict(captured_at=captured_at))
    assert caught.value.code == "invalid_value"
    assert caught.value.field == "captured_at"
    assert caught.value.expected.startswith(f"{RANGE} (")
    assert caught.value.found == json.dumps(captured_at)


def test_captured_at_in_range_is_kept_and_a_day_of_clock_skew_is_allowed() -> None:
    now = datetime.now(UTC)
    for ok in ("2000-01-01T00:00:00Z", (now + timedelta(hours=23)).isoformat()):
        assert capture_from_dict(capture_dict(captured_at=ok)).captured_at == datetime.fromisoformat(ok)
    for late in ((now + timedelta(days=1, minutes=5)).isoformat(), "2999-01-01T00:00:00Z"):
        with pytest.raises(CaptureError, match=re.escape(RANGE)):
            capture_from_dict(capture_dict(captured_at=late))
    # A datetime object (a producer in Python building the model) is held to the same range.
    with pytest.raises(ValidationError, match=re.escape(RANGE)):
        Capture.model_validate({**capture_dict(), "captured_at": datetime(1970, 1, 1, tzinfo=UTC)})
