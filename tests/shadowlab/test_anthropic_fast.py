"""The fast reading of a Messages body's prompt gives pydantic's answer, or none (never a different one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings

from shadowlab.apis import anthropic_wire as wire
from shadowlab.apis import normalize_request_body
from shadowlab.apis.anthropic_fast import prompt_of
from shadowlab.capture import OverflowFloat
from shadowlab.fingerprint import body_fingerprint, prompt_fingerprint
from tests.support.anthropic_bodies import COMMON, MESSAGES_BODY
from tests.support.hostile_corpus import decodable

DATA = Path(__file__).parent / "data"
NOT_PROMPT = {"source_api", "model", "untranslated"}


def pydantic_prompt(body: Any) -> str | None:
    """What the pydantic path dumps for the fingerprint, as JSON text (so 1 and 1.0 differ); None: refused."""
    try:
        request = normalize_request_body("anthropic.messages", body)
    except ValueError:
        return None
    return json.dumps(request.model_dump(mode="json", exclude=NOT_PROMPT), sort_keys=True)


def fast_prompt(body: Any) -> str | None:
    prompt = prompt_of(body)
    return None if prompt is None else json.dumps(prompt, sort_keys=True)


def agrees(body: Any) -> bool:
    """The fast answer is pydantic's, or there is none; True when there is one."""
    fast = fast_prompt(body)
    if fast is not None:
        assert fast == pydantic_prompt(body)
    return fast is not None


def test_common_bodies_are_read_fast_with_the_same_prompt_and_fingerprint() -> None:
    bodies = [COMMON, {**COMMON, "system": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    bodies += [json.loads((DATA / name).read_text()) for name in ("anthropic_tool_use.json",)]
    for body in bodies:
        assert agrees(body)
        request = normalize_request_body("anthropic.messages", body)
        assert body_fingerprint("anthropic.messages", body) == prompt_fingerprint(request)


def test_other_shapes_are_left_to_pydantic_with_the_same_fingerprint() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    others = [
        {**COMMON, "messages": [{"role": "user", "content": [image]}]},
        {**COMMON, "tool_choice": {"type": "auto"}},
        {**COMMON, "temperature": OverflowFloat("inf")},
        {**COMMON, "tools": [{"type": "web_search_20250305", "name": "web_search"}]},
        *(json.loads(path.read_text()) for path in sorted(DATA.glob("anthropic_*.json"))),
    ]
    for body in others:
        request = normalize_request_body("anthropic.messages", body)
        assert body_fingerprint("anthropic.messages", body) == prompt_fingerprint(request)
    assert prompt_of(others[0]) is None and prompt_of(others[1]) is None and prompt_of(others[2]) is None


def test_the_hostile_corpus_gets_pydantic_s_answer_or_none() -> None:
    for capture in decodable():
        if isinstance(capture, dict):
            agrees(capture.get("request"))


def test_the_block_models_have_the_fields_this_reader_knows() -> None:
    # A field added to one of these models must be read here too (or the body left to pydantic).
    assert set(wire.AnthropicTextBlock.model_fields) == {"type", "text"}
    assert set(wire.AnthropicToolUseBlock.model_fields) == {"type", "id", "name", "input"}
    assert set(wire.AnthropicToolResultBlock.model_fields) == {"type", "tool_use_id", "content", "is_error"}
    assert set(wire.AnthropicTool.model_fields) == {"name", "input_schema", "description", "type"}
    assert set(wire.AnthropicMessage.model_fields) == {"role", "content"}


@settings(max_examples=100, deadline=None)
@given(MESSAGES_BODY)
def test_generated_bodies_get_pydantic_s_answer_or_none(body: dict[str, Any]) -> None:
    if agrees(body):  # and the fingerprint (hashed with orjson on this path) is pydantic's
        request = normalize_request_body("anthropic.messages", body)
        assert body_fingerprint("anthropic.messages", body) == prompt_fingerprint(request)


def test_floats_of_every_magnitude_give_pydantic_s_fingerprint() -> None:
    floats = [0.0, -0.0, 1e-5, 1e-4, 0.1, 123.456, 2.0**53, 1e15, 9.999999e15, 1e16, 1e300, -2.5e-7]
    tool_use = {"type": "tool_use", "id": "t", "name": "f", "input": {"x": floats, "big": 2**70}}
    bodies = [{**COMMON, "temperature": x} for x in floats] + [
        {**COMMON, "messages": [{"role": "assistant", "content": [tool_use]}]}
    ]
    for body in bodies:
        request = normalize_request_body("anthropic.messages", body)
        assert body_fingerprint("anthropic.messages", body) == prompt_fingerprint(request)
    assert prompt_of({**COMMON, "temperature": 0.5}) is not None and prompt_of(bodies[2]) is None
