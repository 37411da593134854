"""The simulator over real HTTP, driven by the official anthropic and openai SDKs."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
from anthropic.types import MessageParam, TextBlockParam, ToolParam
from openai.types.chat import ChatCompletionMessageParam

from simulator import (
    HEADER_ARM,
    HEADER_CAPTURE_ID,
    HEADER_FAULT,
    HEADER_INJECTED_TTFT,
    Distribution,
    ProfileSet,
    RunningSimulator,
    SimRecord,
    running_simulator,
)
from tests.support.sim_profiles import FAST

QUESTION = "Which database should a small team pick for analytics?"
MESSAGES: list[MessageParam] = [{"role": "user", "content": QUESTION}]
OPENAI_MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": QUESTION}]


# SDK clients keep their connections open until closed; left to the garbage collector, a socket of one test
# is reported (ResourceWarning, an error here) in whichever later test the collector happens to run.
_OPEN_CLIENTS: list[anthropic.Anthropic | openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    yield
    while _OPEN_CLIENTS:
        _OPEN_CLIENTS.pop().close()


def _anthropic(sim: RunningSimulator) -> anthropic.Anthropic:
    client = anthropic.Anthropic(base_url=sim.base_url, api_key="test-key", max_retries=0)
    _OPEN_CLIENTS.append(client)
    return client


def _openai(sim: RunningSimulator) -> openai.OpenAI:
    client = openai.OpenAI(base_url=sim.openai_base_url, api_key="test-key", max_retries=0)
    _OPEN_CLIENTS.append(client)
    return client


def test_anthropic_sdk_stream_and_create_agree_with_the_record(simulator_server: RunningSimulator) -> None:
    client = _anthropic(simulator_server)
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=500, messages=MESSAGES) as stream:
        streamed = stream.get_final_message()
        request_id = stream.response.headers["request-id"]
    record = simulator_server.simulator.record(request_id)
    assert record.answer is not None and record.stream
    assert streamed.content[0].type == "text" and streamed.content[0].text == record.answer.full_text
    assert streamed.stop_reason == record.answer.stop_reason == "end_turn"
    assert streamed.usage.model_dump(include=set(record.usage)) == record.usage

    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=500, messages=MESSAGES
    )
    created = raw.parse()
    whole = simulator_server.simulator.record(raw.headers["request-id"])
    assert not whole.stream and whole.answer == record.answer  # same seed, arm and request: same answer
    assert created.content[0].type == "text" and created.content[0].text == record.answer.full_text
    assert created.usage.model_dump(include=set(whole.usage)) == whole.usage


def test_openai_sdk_stream_and_create_agree_with_the_record(simulator_server: RunningSimulator) -> None:
    client = _openai(simulator_server)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4.1",
        messages=OPENAI_MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())
    record = simulator_server.simulator.record(raw.headers["x-request-id"])
    assert record.answer is not None
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text == record.answer.full_text and finish == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.model_dump(include=set(record.usage)) == {
        k: v for k, v in record.usage.items() if k in ("prompt_tokens", "completion_tokens", "total_tokens")
    } | {k: chunks[-1].usage.model_dump()[k] for k in ("prompt_tokens_details", "completion_tokens_details")}
    assert chunks[-1].usage.completion_tokens == record.answer.output_tokens

    completion = client.chat.completions.create(model="gpt-4.1", messages=OPENAI_MESSAGES)
    assert completion.choices[0].message.content == record.answer.full_text
    assert completion.usage is not None and completion.usage.prompt_tokens == record.usage["prompt_tokens"]


def test_answers_are_deterministic_by_seed_arm_and_request(simulator_server: RunningSimulator) -> None:
    client = _anthropic(simulator_server)

    def ask(arm: str, content: str = "hello") -> str:
        message = client.messages.create(
            model="m",
            max_tokens=300,
            messages=[{"role": "user", "content": content}],
            extra_headers={HEADER_ARM: arm},
        )
        assert message.content[0].type == "text"
        return message.content[0].text

    assert ask("a") == ask("a")
    assert ask("a") != ask("b")  # A/A arms differ as sampling would
    assert ask("a") != ask("a", "hello again")


def _served(sim: RunningSimulator, model: str, arm: str, capture_id: str | None) -> SimRecord:
    headers = {"x-api-key": "k", HEADER_ARM: arm} | ({HEADER_CAPTURE_ID: capture_id} if capture_id else {})
    body = {"model": model, "max_tokens": 300, "messages": MESSAGES}
    response = httpx.post(f"{sim.base_url}/v1/messages", json=body, headers=headers)
    assert response.status_code == 200
    return sim.simulator.record(response.headers["request-id"])


@pytest.fixture(scope="module")
def sampling_simulator() -> Iterator[RunningSimulator]:
    """Timing that varies (so timing draws can be compared); `frozen-*` models repeat their answers."""
    varied = FAST.model_copy(update={"ttft_ms": Distribution(median=5, sigma=0.5, low=1)})
    frozen = varied.model_copy(update={"repeat_identical": True})
    with running_simulator(seed=7, profiles=ProfileSet(default=varied, models={"frozen-*": frozen})) as sim:
        yield sim


def test_one_body_replayed_for_two_captures_is_two_samplings(sampling_simulator: RunningSimulator) -> None:
    first = _served(sampling_simulator, "m", "aa", "capture-1")
    second = _served(sampling_simulator, "m", "aa", "capture-2")
    assert first.capture_id == "capture-1" and second.capture_id == "capture-2"
    assert first.answer is not None and second.answer is not None
    assert first.answer.full_text != second.answer.full_text
    assert first.answer.quality != second.answer.quality
    assert first.injected_ttft_ms != second.injected_ttft_ms


def test_the_same_capture_replayed_twice_gets_the_same_answer_and_timing(
    sampling_simulator: RunningSimulator,
) -> None:
    first = _served(sampling_simulator, "m", "aa", "capture-1")
    again = _served(sampling_simulator, "m", "aa", "capture-1")
    assert first.answer == again.answer
    assert first.injected_ttft_ms == again.injected_ttft_ms
    assert _served(sampling_simulator, "m", "other-arm", "capture-1").answer != first.answer


def test_a_repeat_identical_model_answers_every_capture_of_a_body_alike(
    sampling_simulator: RunningSimulator,
) -> None:
    first = _served(sampling_simulator, "frozen-1", "aa", "capture-1")
    second = _served(sampling_simulator, "frozen-1", "aa", "capture-2")
    unnamed = _served(sampling_simulator, "frozen-1", "aa", None)
    assert first.answer is not None and first.answer == second.answer == unnamed.answer
    # temperature 0 fixes the words, not the latency: timing is still drawn per capture
    assert first.injected_ttft_ms != second.injected_ttft_ms
    assert _served(sampling_simulator, "frozen-1", "other-arm", "capture-1").answer != first.answer


def test_without_a_capture_id_the_body_alone_decides(sampling_simulator: RunningSimulator) -> None:
    first, again = (_served(sampling_simulator, "m", "aa", None) for _ in range(2))
    assert first.answer == again.answer


def test_a_key_is_required_in_either_header(simulator: str) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": MESSAGES}
    url = f"{simulator}/v1/messages"
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers={"x-api-key": "k"}).status_code == 200
    assert httpx.post(url, json=body, headers={"authorization": "Bearer k"}).status_code == 200


def test_a_missing_required_field_is_a_400_naming_it(simulator: str) -> None:
    response = httpx.post(
        f"{simulator}/v1/messages", json={"model": "m", "messages": MESSAGES}, headers={"x-api-key": "k"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }


@pytest.mark.parametrize(
    ("fault", "anthropic_status", "anthropic_type", "openai_status"),
    [
        ("rate_limit", 429, "rate_limit_error", 429),
        ("overloaded", 529, "overloaded_error", 503),
        ("server_error", 500, "api_error", 500),
        ("bad_request", 400, "invalid_request_error", 400),
    ],
)
def test_http_faults_by_header(
    simulator: str, fault: str, anthropic_status: int, anthropic_type: str, openai_status: int
) -> None:
    headers = {"x-api-key": "k", HEADER_FAULT: fault}
    response = httpx.post(
        f"{simulator}/v1/messages",
        json={"model": "m", "max_tokens": 5, "messages": MESSAGES},
        headers=headers,
    )
    assert response.status_code == anthropic_status
    assert response.json()["error"]["type"] == anthropic_type
    assert response.headers[HEADER_FAULT] == fault
    assert ("retry-after" in response.headers) == (fault == "rate_limit")
    response = httpx.post(
        f"{simulator}/v1/chat/completions", json={"model": "m", "messages": MESSAGES}, headers=headers
    )
    assert response.status_code == openai_status and "message" in response.json()["error"]


def test_reset_drops_the_connection(simulator: str) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.post(
            f"{simulator}/v1/messages",
            json={"model": "m", "max_tokens": 5, "messages": MESSAGES},
            headers={"x-api-key": "k", HEADER_FAULT: "reset"},
        )


def test_an_outage_on_cue_fails_every_request_to_its_models_until_it_ends(simulator: str) -> None:
    key = {"x-api-key": "k"}

    def ask(model: str) -> int:
        body = {"model": model, "max_tokens": 5, "messages": MESSAGES}
        return httpx.post(f"{simulator}/v1/messages", json=body, headers=key).status_code

    started = httpx.post(f"{simulator}/sim/outage", json={"models": "down-*", "fault": "server_error"},
                         headers=key)  # fmt: skip
    try:
        assert started.json() == {"outages": {"down-*": "server_error"}}
        assert [ask("down-1"), ask("down-2"), ask("up-1")] == [500, 500, 200]
        refused = httpx.post(f"{simulator}/sim/outage", json={"models": "x", "fault": "flood"}, headers=key)
        assert refused.status_code == 400 and "fault in" in refused.json()["error"]
    finally:
        ended = httpx.delete(f"{simulator}/sim/outage", headers=key)
    assert ended.json() == {"outages": {}} and ask("down-1") == 200
    assert httpx.delete(f"{simulator}/sim/outage").status_code == 404  # without a key it is no route


def test_stream_error_event_reaches_the_sdk_after_partial_text(simulator_server: RunningSimulator) -> None:
    client = _anthropic(simulator_server)
    seen: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(
            model="m", max_tokens=300, messages=MESSAGES, extra_headers={HEADER_FAULT: "stream_error"}
        ) as stream,
    ):
        seen.extend(stream.text_stream)
    assert seen and caught.value.type == "overloaded_error"


def test_prompt_caching_reports_creation_then_read(simulator_server: RunningSimulator) -> None:
    client = _anthropic(simulator_server)
    system: list[TextBlockParam] = [
        {"type": "text", "text": "You are a careful analyst. " * 60, "cache_control": {"type": "ephemeral"}}
    ]
    first = client.messages.create(model="cache-model", max_tokens=50, system=system, messages=MESSAGES)
    second = client.messages.create(model="cache-model", max_tokens=50, system=system, messages=MESSAGES)
    assert first.usage.cache_creation_input_tokens and first.usage.cache_creation_input_tokens > 100
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == first.usage.input_tokens  # only the uncached tail
    plain = client.messages.create(model="cache-model", max_tokens=50, system="x " * 400, messages=MESSAGES)
    assert plain.usage.cache_creation_input_tokens == plain.usage.cache_read_input_tokens == 0


def test_tool_use_and_thinking_stream_through_the_sdk(simulator_server: RunningSimulator) -> None:
    client = _anthropic(simulator_server)
    tool: ToolParam = {
        "name": "lookup",
        "description": "Look up a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    }
    with client.messages.stream(
        model="m",
        max_tokens=2000,
        messages=MESSAGES,
        tools=[tool],
        tool_choice={"type": "any"},
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as stream:
        message = stream.get_final_message()
    kinds = [block.type for block in message.content]
    assert kinds == ["thinking", "text", "tool_use"] and message.stop_reason == "tool_use"
    call = message.content[2]
    assert call.type == "tool_use" and call.name == "lookup"
    assert set(call.input) == {"city", "days"} and isinstance(call.input["days"], int)


def test_each_response_carries_the_injected_ttft(simulator: str) -> None:
    response = httpx.post(
        f"{simulator}/v1/messages",
        json={"model": "m", "max_tokens": 5, "messages": MESSAGES},
        headers={"x-api-key": "k", "x-sim-ttft-ms": "30"},
    )
    assert float(response.headers[HEADER_INJECTED_TTFT]) == 30.0
