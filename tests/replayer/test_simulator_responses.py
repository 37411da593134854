"""The simulator's Responses API (`POST /v1/responses`) over real HTTP, driven by the official openai SDK:
`responses.create` (whole and `stream=True`) and the `responses.stream()` helper, which checks the event
sequence (items opened before their deltas, `response.completed` carrying the whole response)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from openai.types.responses import FunctionToolParam

from simulator import HEADER_FAULT, RunningSimulator

INPUT = "Which database should a small team pick for analytics?"
TOOL: FunctionToolParam = {
    "type": "function",
    "name": "lookup",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    "strict": None,  # the API's default, as when the key is left out (the SDK's TypedDict requires it)
}


@pytest.fixture
def client(simulator_server: RunningSimulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=simulator_server.openai_base_url, api_key="test-key", max_retries=0) as sdk:
        yield sdk


def test_create_returns_the_answer_the_simulator_recorded(
    client: openai.OpenAI, simulator_server: RunningSimulator
) -> None:
    raw = client.responses.with_raw_response.create(model="gpt-5", input=INPUT, reasoning={"effort": "low"})
    response = raw.parse()
    record = simulator_server.simulator.record(raw.headers["x-request-id"])
    assert record.api == "responses" and not record.stream and record.answer is not None
    assert response.status == "completed" and response.output_text == record.answer.full_text
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.usage is not None
    assert response.usage.model_dump(exclude_unset=True) == record.usage
    assert response.usage.output_tokens_details.reasoning_tokens == record.answer.reasoning_tokens > 0


def test_a_raw_stream_has_the_event_sequence_of_the_api(
    client: openai.OpenAI, simulator_server: RunningSimulator
) -> None:
    events = list(client.responses.create(model="gpt-5", input=INPUT, stream=True))
    kinds = [event.type for event in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-1] == "response.completed" and kinds.count("response.completed") == 1
    assert [event.sequence_number for event in events] == list(range(len(events)))
    first_delta = kinds.index("response.output_text.delta")
    assert kinds[first_delta - 2 : first_delta] == [
        "response.output_item.added",
        "response.content_part.added",
    ]
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    completed = events[-1]
    assert completed.type == "response.completed" and completed.response.output_text == text
    assert completed.response.usage is not None and completed.response.usage.output_tokens > 0


def test_the_stream_helper_assembles_function_calls(client: openai.OpenAI) -> None:
    with client.responses.stream(model="gpt-5", input=INPUT, tools=[TOOL], tool_choice="required") as stream:
        arguments = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
        final = stream.get_final_response()
    call = final.output[-1]
    assert call.type == "function_call" and call.name == "lookup" and call.arguments == arguments
    assert call.call_id.startswith("toolu_")


def test_a_stream_error_reaches_the_sdk_as_an_error_event(client: openai.OpenAI) -> None:
    stream = client.responses.create(
        model="gpt-5", input=INPUT, stream=True, extra_headers={HEADER_FAULT: "stream_error"}
    )
    kinds = [event.type for event in stream]
    assert kinds[-1] == "error" and "response.completed" not in kinds


def test_limits_and_errors_look_like_the_api(client: openai.OpenAI) -> None:
    cut = client.responses.create(model="gpt-5", input=INPUT, max_output_tokens=3)
    assert cut.status == "incomplete" and cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="gpt-5", input=INPUT, extra_headers={HEADER_FAULT: "rate_limit"})
    with pytest.raises(openai.BadRequestError, match="input: Field required"):
        client.responses.create(model="gpt-5", extra_body={"input": None}, input=openai.omit)
