"""The capture fast path accepts only what the pydantic model accepts, with its values (else: the model)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shadowlab.apis import anthropic_wire as wire
from shadowlab.capture import (
    Capture,
    CaptureError,
    CaptureView,
    ProductionResponse,
    Source,
    capture_from_dict,
    capture_view_from_dict,
)
from shadowlab.capture_fast import FastCapture, _Envelope, _Request, _Response, _Source
from tests.support.anthropic_bodies import ANY_JSON, COMMON, MESSAGES_BODY, maybe
from tests.support.hostile_corpus import decodable
from tests.support.ingest import make_capture


def view(capture: CaptureView) -> tuple[Any, ...]:
    """Everything ingest reads of a validated capture."""
    source, answer = capture.source, capture.response
    return (
        capture.request_id, capture.schema_version, capture.captured_at, capture.captured_at.utcoffset(),
        capture.api, capture.request.model, source.service, source.route, source.environment,
        source.conversation_id, source.user_hash, dict(source.tags),
        None if answer is None else (answer.usage_status, answer.text, answer.tool_calls),
    )  # fmt: skip


def agrees(data: Any) -> bool:
    """The fast path's answer is the model's, or the model answers (the same error, or a capture); True when
    the fast path answered."""
    try:
        expected: Capture | CaptureError = capture_from_dict(data)
    except CaptureError as exc:
        expected = exc
    try:
        got: CaptureView | CaptureError = capture_view_from_dict(data)
    except CaptureError as exc:
        got = exc
    if isinstance(got, FastCapture):
        assert isinstance(expected, Capture), expected
        assert view(got) == view(expected)
        return True
    if isinstance(expected, CaptureError):
        assert isinstance(got, CaptureError) and (got.code, got.detail) == (expected.code, expected.detail)
    else:
        assert got == expected
    return False


def test_common_captures_take_the_fast_path_with_the_model_s_values() -> None:
    common = make_capture(1, source={"service": "s", "tags": {"team": "ml"}, "conversation_id": "c"})
    answer = {
        "text": "t",
        "usage_status": "absent",
        "ttft_ms": 5,
        "latency_ms": 7.5,
        "tool_calls": [{"a": 1}],
    }
    captures = [
        make_capture(0),
        common,
        {**common, "request": COMMON, "response": answer, "extra": [1]},
        {**common, "captured_at": "2025-01-31T12:00:00.5-05:30", "response": None},
    ]
    assert all(agrees(capture) for capture in captures)


BAD_OR_UNCOMMON = {
    "another API": {"api": "openai.chat", "request": {"model": "m", "messages": []}},
    "an image block": {"request": {**COMMON, "messages": [{"role": "user", "content": [{"type": "image"}]}]}},
    "a tool choice": {"request": {**COMMON, "tool_choice": {"type": "auto"}}},
    "a server tool": {"request": {**COMMON, "tools": [{"type": "web_search_20250305", "name": "w"}]}},
    "a bool for an int": {"request": {**COMMON, "max_tokens": True}},
    "a NaN time to first token": {"response": {"ttft_ms": float("nan")}},
    "a negative latency": {"response": {"latency_ms": -1}},
    "a request id of 129 characters": {"request_id": "r" * 129},
    "an empty request id": {"request_id": ""},
    "an empty service": {"source": {"service": ""}},
    "a naive time": {"captured_at": "2025-01-31T12:00:00"},
    "a time in year 10000": {"captured_at": "9999-12-31T23:59:59-14:00"},
    "a time that is a number": {"captured_at": 1700000000},
    "schema version true": {"schema_version": True},
    "a tag that is a number": {"source": {"service": "s", "tags": {"a": 1}}},
    "no source": {"source": None},
}


@pytest.mark.parametrize("change", BAD_OR_UNCOMMON.values(), ids=BAD_OR_UNCOMMON.keys())
def test_uncommon_shapes_and_errors_are_the_model_s(change: dict[str, Any]) -> None:
    assert not agrees(make_capture(2) | change)


def test_the_hostile_corpus_gets_the_model_s_answer() -> None:
    for data in decodable():
        agrees(data)


def _names(struct: type[msgspec.Struct]) -> set[str]:
    return {field.name for field in msgspec.structs.fields(struct)}


def test_the_structs_declare_every_field_of_the_models() -> None:
    # A field added to a model must be added here too, or the fast path would accept what the model refuses.
    assert _names(_Envelope) | {"schema_version"} == set(Capture.model_fields)
    assert _names(_Source) == set(Source.model_fields)
    assert _names(_Response) == set(ProductionResponse.model_fields)
    assert _names(_Request) == set(wire.AnthropicMessagesRequest.model_fields)


_TIMES = ["2025-01-31T12:00:00Z", "2025-01-31T12:00:00", "2025-13-01T00:00Z"]
_SOURCE = st.fixed_dictionaries(
    {"service": maybe(st.text(max_size=2))},
    optional={"tags": maybe(st.dictionaries(st.text(max_size=2), ANY_JSON))},
)
_RESPONSE = st.fixed_dictionaries({}, optional={
    "ttft_ms": maybe(st.floats() | st.integers(-1, 3)),
    "usage_status": maybe(st.sampled_from(["absent", "x"])),
    "tool_calls": maybe(st.lists(st.dictionaries(st.text(max_size=2), ANY_JSON), max_size=2)),
    "text": ANY_JSON,
})  # fmt: skip
_ENVELOPE = st.fixed_dictionaries(
    {"schema_version": maybe(st.just(1)), "request_id": maybe(st.text(max_size=3)),
     "captured_at": maybe(st.sampled_from(_TIMES)), "source": maybe(_SOURCE),
     "api": maybe(st.just("anthropic.messages")), "request": MESSAGES_BODY},
    optional={"response": maybe(st.none() | _RESPONSE)},
)  # fmt: skip


@settings(max_examples=50, deadline=None)
@given(_ENVELOPE)
@example({  # a block whose type is a list: was a TypeError from the model's union tag, not a CaptureError
    "schema_version": 1, "request_id": "", "captured_at": "2025-01-31T12:00:00Z", "source": {},
    "api": "anthropic.messages",
    "request": {"model": "m", "max_tokens": 2, "messages": [{"role": "system", "content": [{"type": []}]}]},
})  # fmt: skip
def test_generated_captures_get_the_model_s_answer(data: dict[str, Any]) -> None:
    agrees(data)
