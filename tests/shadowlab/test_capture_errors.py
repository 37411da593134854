"""Capture schema v1's failures get dead-letter codes and field paths; decoding (msgspec) refuses what is
not a JSON object with the same codes and reads what json.loads reads."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from shadowlab.capture import (
    CaptureError,
    OverflowFloat,
    _json_object,
    capture_from_dict,
    decode_capture_bytes,
    decode_capture_text,
    parse_capture_bytes,
)
from tests.support.capture_dicts import capture_dict, encode


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
