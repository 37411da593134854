"""Every SDK call style that produces an answer is mirrored: `with_raw_response`, `with_streaming_response`,
`.parse()`, `beta.*` — the real anthropic and openai SDKs, wrapped, against the simulator over HTTP; every
capture validates with the schema's own parser."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import anthropic
import openai
import pydantic
import pytest
from anthropic.types import TextBlock
from anthropic.types.beta import BetaTextBlock
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionStreamOptionsParam

import shadowlab_tee as tee
from shadowlab.apis import usage_from_capture
from simulator import RunningSimulator
from tests.support.tee_captures import delivered, request_of, response_of

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Which index suits range scans?"}]
# One request body for the plain and the beta Messages API (their parameter types differ, the JSON does not).
CLAUDE: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 200, "messages": MESSAGES}


def _text(content: Sequence[object]) -> str:
    """The text of an Anthropic answer's first block (the simulator answers one text block)."""
    first = content[0]
    assert isinstance(first, TextBlock | BetaTextBlock), first
    return first.text


class Answer(pydantic.BaseModel):
    index: str


@pytest.fixture
def gpt(sim: RunningSimulator, sink: tee.MemorySink) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-test-key", max_retries=0) as sdk:
        yield tee.wrap(sdk, sink, "checkout")


@pytest.fixture
def claude(sim: RunningSimulator, sink: tee.MemorySink) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=sim.base_url, api_key="sk-ant-test", max_retries=0) as sdk:
        yield tee.wrap(sdk, sink, "checkout")


def test_with_raw_response_is_mirrored_at_the_resource_and_at_the_client(
    gpt: openai.OpenAI, sink: tee.MemorySink
) -> None:
    raw = gpt.chat.completions.with_raw_response.create(model="gpt-4.1", messages=MESSAGES)
    whole = raw.parse()
    streamed = gpt.with_raw_response.chat.completions.create(
        model="gpt-4.1",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(streamed.parse())
    first, second = delivered(sink, 2)
    assert raw.status_code == 200 and request_of(first) == {"model": "gpt-4.1", "messages": MESSAGES}
    assert response_of(first)["text"] == whole.choices[0].message.content
    assert whole.usage is not None and response_of(first)["usage"]["total_tokens"] == whole.usage.total_tokens
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert response_of(second)["text"] == text and response_of(second)["usage"] is not None
    assert response_of(second)["ttft_ms"] > 0 and request_of(second)["stream"] is True


def test_with_streaming_response_is_captured_when_the_body_is_read_or_the_stream_parsed(
    gpt: openai.OpenAI, sink: tee.MemorySink
) -> None:
    with gpt.chat.completions.with_streaming_response.create(model="gpt-4.1", messages=MESSAGES) as response:
        whole = response.parse()
    with gpt.responses.with_streaming_response.create(model="gpt-5", input="Hi", stream=True) as response:
        events = list(response.parse())
    with gpt.chat.completions.with_streaming_response.create(model="gpt-4.1", messages=MESSAGES) as response:
        lines = list(response.iter_lines())  # raw bytes the tee cannot read: not captured, counted
    first, second = delivered(sink, 2, clean=False)
    assert response_of(first)["text"] == whole.choices[0].message.content and lines
    assert second.api == "openai.responses" and events[-1].type == "response.completed"
    assert response_of(second)["text"] == events[-1].response.output_text
    assert response_of(second)["ttft_ms"] > 0
    stats = sink.stats()
    assert stats.failed == 1 and "read only as bytes or lines" in (stats.last_error or "")


def test_leaving_a_streaming_response_block_early_is_an_abandoned_stream(
    gpt: openai.OpenAI, sink: tee.MemorySink
) -> None:
    with gpt.responses.with_streaming_response.create(model="gpt-5", input="Hi", stream=True) as response:
        for event in response.parse():
            if event.type == "response.output_text.delta":
                break
    (capture,) = delivered(sink, 1)
    assert response_of(capture)["error"]["type"] == "StreamAbandoned" and response_of(capture)["text"]


def test_async_raw_and_streaming_responses_are_mirrored(sim: RunningSimulator, sink: tee.MemorySink) -> None:
    async def run() -> list[str]:
        async with openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0) as sdk:
            client = tee.wrap(sdk, sink, "checkout")
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4.1",
                messages=MESSAGES,
                stream=True,
            )
            streamed = "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices])
            async with client.chat.completions.with_streaming_response.create(
                model="gpt-4.1",
                messages=MESSAGES,
            ) as response:
                whole = await response.parse()
            return [streamed, whole.choices[0].message.content or ""]

    texts = asyncio.run(run())
    first, second = delivered(sink, 2)
    assert [response_of(first)["text"], response_of(second)["text"]] == texts
    assert response_of(first)["usage"] is None and response_of(first)["ttft_ms"] > 0


def test_parse_is_mirrored_and_a_python_type_is_left_out_of_the_body(
    gpt: openai.OpenAI, sink: tee.MemorySink
) -> None:
    schema = {"type": "json_object"}
    # A JSON-schema dict, which `parse` is typed not to take but passes on (what the test is about)
    parsed = gpt.chat.completions.parse(model="gpt-4.1", messages=MESSAGES, response_format=schema)  # type: ignore[arg-type]
    beta = gpt.beta.chat.completions.parse(model="gpt-4.1", messages=MESSAGES)
    # The simulator answers prose, so the SDK's own parsing into the type fails after the call: the
    # capture keeps the request without the type and the error the caller got.
    with pytest.raises(pydantic.ValidationError):
        gpt.chat.completions.parse(model="gpt-4.1", messages=MESSAGES, response_format=Answer)
    with_dict, from_beta, with_type = delivered(sink, 3)
    assert request_of(with_dict)["response_format"] == schema
    assert response_of(with_dict)["text"] == parsed.choices[0].message.content
    assert response_of(from_beta)["text"] == beta.choices[0].message.content
    assert request_of(with_type) == {"model": "gpt-4.1", "messages": MESSAGES}
    assert response_of(with_type)["error"]["type"] == "ValidationError"


def test_anthropic_beta_messages_and_raw_responses_are_mirrored(
    claude: anthropic.Anthropic, sink: tee.MemorySink
) -> None:
    message = claude.beta.messages.create(**CLAUDE, betas=["context-1m-2025-08-07"])
    with claude.beta.messages.stream(**CLAUDE) as stream:
        final = stream.get_final_message()
    raw = claude.messages.with_raw_response.create(**CLAUDE).parse()
    with claude.beta.messages.with_streaming_response.create(**CLAUDE) as response:
        read = response.parse()
    captures = delivered(sink, 4)
    assert {capture.api for capture in captures} == {"anthropic.messages"}
    texts = [response_of(capture)["text"] for capture in captures]
    assert texts == [_text(message.content), _text(final.content), _text(raw.content), _text(read.content)]
    assert request_of(captures[0]) == CLAUDE | {"betas": ["context-1m-2025-08-07"]}
    assert request_of(captures[1]) == CLAUDE | {"stream": True} and response_of(captures[1])["ttft_ms"] > 0
    assert response_of(captures[2])["usage"]["output_tokens"] == raw.usage.output_tokens


def test_a_chat_stream_without_usage_is_marked_absent_never_guessed(
    gpt: openai.OpenAI, sink: tee.MemorySink
) -> None:
    list(gpt.chat.completions.create(model="gpt-4.1", messages=MESSAGES, stream=True))
    options: ChatCompletionStreamOptionsParam = {"include_usage": True}
    list(gpt.chat.completions.create(model="gpt-4.1", messages=MESSAGES, stream=True, stream_options=options))
    without, with_usage = delivered(sink, 2)
    assert response_of(without)["usage"] is None and response_of(without)["usage_status"] == "absent"
    assert usage_from_capture(without) is None
    assert response_of(with_usage)["usage"]["completion_tokens"] > 0
    assert "usage_status" not in with_usage.to_json_dict()["response"]
