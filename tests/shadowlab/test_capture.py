"""Capture schema v1: real request bodies parse and round-trip, the JSON schema describes them, and
`captured_at` is held to a range (failures and decoding: `test_capture_errors`)."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shadowlab.apis import validate_request_body
from shadowlab.apis.anthropic_wire import AnthropicMessagesRequest
from shadowlab.apis.openai_chat_wire import OpenAIChatRequest
from shadowlab.apis.wire import OtherKind
from shadowlab.capture import (
    Capture,
    CaptureError,
    capture_from_dict,
    capture_json_schema,
    parse_capture_bytes,
)
from tests.support.capture_dicts import BODIES, body, capture_dict, encode


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
