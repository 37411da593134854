"""The tee mirrors OpenAI's Responses API and chat stream helper: the real openai SDK, wrapped, against the
simulator over HTTP (sync and async, streamed or not); every capture validates and normalises."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from openai.types.responses import FunctionToolParam, ResponseInputParam

import shadowlab_tee as tee
from shadowlab.apis import normalize_request, usage_from_capture
from simulator import RunningSimulator
from tests.support.tee_captures import delivered, response_of

INPUT: ResponseInputParam = [{"role": "user", "content": "Which index suits range scans?"}]
TOOL: FunctionToolParam = {
    "type": "function",
    "name": "lookup",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    "strict": True,
}


@pytest.fixture
def client(sim: RunningSimulator, sink: tee.MemorySink) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-test-key", max_retries=0) as sdk:
        yield tee.wrap(sdk, sink, "checkout")


def test_responses_create_is_captured_with_usage_of_cached_and_reasoning_tokens(
    client: openai.OpenAI, sink: tee.MemorySink
) -> None:
    answer = client.responses.create(
        model="gpt-5", input=INPUT, reasoning={"effort": "low"}, max_output_tokens=400
    )
    (capture,) = delivered(sink, 1)
    assert capture.api == "openai.responses"
    assert capture.to_json_dict()["request"] == {
        "model": "gpt-5", "input": INPUT, "reasoning": {"effort": "low"}, "max_output_tokens": 400,
    }  # fmt: skip
    response = response_of(capture)
    assert response["text"] == answer.output_text and response["stop_reason"] == "completed"
    assert answer.usage is not None and response["usage"] == answer.usage.model_dump(
        mode="json", exclude_unset=True
    )
    usage = usage_from_capture(capture)
    assert usage is not None and usage.reasoning_tokens == answer.usage.output_tokens_details.reasoning_tokens
    assert normalize_request(capture).reasoning_effort == "low"
    assert "sk-test-key" not in sink.records()[0][1].decode()


def test_a_raw_stream_is_the_same_stream_and_is_captured_with_ttft(
    client: openai.OpenAI, sink: tee.MemorySink
) -> None:
    stream = client.responses.create(
        model="gpt-5", input=INPUT, stream=True, tools=[TOOL], tool_choice="required"
    )
    assert isinstance(stream, openai.Stream)
    events = list(stream)
    (capture,) = delivered(sink, 1)
    response = response_of(capture)
    final = events[-1]
    assert final.type == "response.completed"
    assert response["text"] == final.response.output_text and response["usage"]["output_tokens"] > 0
    (call,) = response["tool_calls"]
    assert call["name"] == "lookup" and set(call["input"]) == {"q"}
    assert 0 < response["ttft_ms"] <= response["latency_ms"] and response["error"] is None
    assert capture.to_json_dict()["request"]["stream"] is True


def test_the_responses_stream_helper_is_captured(client: openai.OpenAI, sink: tee.MemorySink) -> None:
    with client.responses.stream(model="gpt-5", input=INPUT) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
    (capture,) = delivered(sink, 1)
    assert capture.to_json_dict()["request"] == {"model": "gpt-5", "input": INPUT, "stream": True}
    response = response_of(capture)
    assert response["text"] == text and response["ttft_ms"] is not None


def test_an_abandoned_responses_stream_keeps_the_text_so_far(
    client: openai.OpenAI, sink: tee.MemorySink
) -> None:
    stream = client.responses.create(model="gpt-5", input=INPUT, stream=True)
    seen = ""
    for event in stream:
        if event.type == "response.output_text.delta":
            seen = event.delta
            break
    stream.close()
    response = response_of(delivered(sink, 1)[0])
    assert response["error"]["type"] == "StreamAbandoned" and response["text"] == seen != ""
    assert response["usage"] is None  # usage comes only with the last event: never guessed


def test_the_chat_stream_helper_is_captured(client: openai.OpenAI, sink: tee.MemorySink) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]
    with client.chat.completions.stream(
        model="gpt-4.1", messages=messages, stream_options={"include_usage": True}
    ) as stream:
        final = stream.get_final_completion()
    (capture,) = delivered(sink, 1)
    assert capture.api == "openai.chat"
    response = response_of(capture)
    assert response["text"] == final.choices[0].message.content and response["usage"] is not None


def test_async_responses_create_and_stream_are_captured(sim: RunningSimulator, sink: tee.MemorySink) -> None:
    async def run() -> tuple[str, str]:
        async with openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0) as sdk:
            client = tee.wrap(sdk, sink, "checkout")
            whole = await client.responses.create(model="gpt-5", input="Hello there")
            streamed = [
                e async for e in await client.responses.create(model="gpt-5", input="Hi", stream=True)
            ]
            return whole.output_text, "".join(
                e.delta for e in streamed if e.type == "response.output_text.delta"
            )

    whole, streamed = asyncio.run(run())
    first, second = delivered(sink, 2)
    assert (response_of(first)["text"], response_of(second)["text"]) == (whole, streamed)
    assert first.api == second.api == "openai.responses"
