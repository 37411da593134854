"""Providers against the simulator over real HTTP: results agree with its record; timing; fault codes."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from shadowlab.apis import normalize_request_body
from shadowlab.apis.internal import NormalizedRequest
from shadowlab.config import Settings
from shadowlab.providers import ERROR_CODES, ProviderConfig, ProviderResult, create_provider
from shadowlab.providers.registry import (
    UnknownProviderError,
    config_from_settings,
    provider_names,
    settle_heap,
)
from shadowlab.providers.wire_timing import ArrivalWatch
from simulator import Distribution, ModelProfile, ProfileSet, RunningSimulator, running_simulator
from tests.support.provider_calls import complete_once, httpx_of

FAST = ModelProfile(
    ttfb_ms=Distribution(median=2),
    ttft_ms=Distribution(median=5),
    tokens_per_s=20_000,
    output_tokens=Distribution(median=60, low=60, high=60),
    stall_ms=2_000,
)
REQUEST = normalize_request_body(
    "anthropic.messages",
    {
        "model": "claude-haiku-4-5",
        "max_tokens": 400,
        "messages": [{"role": "user", "content": "Summarise the trade-offs of sharding."}],
    },
)
PROVIDERS = ("anthropic", "openai", "openai_responses")


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(seed=11, profiles=ProfileSet(default=FAST)) as running:
        yield running


def _call(
    sim: RunningSimulator,
    name: str,
    request: NormalizedRequest = REQUEST,
    headers: dict[str, str] | None = None,
    **config: object,
) -> ProviderResult:
    url = sim.base_url if name == "anthropic" else sim.openai_base_url
    settings: dict[str, object] = {
        "base_url": url,
        "api_key": SecretStr("sk-secret-123"),
        "stall_timeout_s": 0.5,
    }
    return complete_once(name, ProviderConfig(**settings | config), request, headers)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", PROVIDERS)
def test_result_agrees_with_the_simulator_record(sim: RunningSimulator, name: str) -> None:
    result = _call(sim, name)
    assert result.ok, result.error_detail
    record = sim.simulator.record(result.header("request-id") or result.header("x-request-id") or "")
    assert record.answer is not None
    assert result.text == record.answer.full_text and result.stop_reason == "end_turn"
    assert result.usage is not None and result.usage.output_tokens == record.answer.output_tokens
    assert result.usage.total_input_tokens == record.answer.input_tokens
    assert result.ttfb_ms is not None and result.ttft_ms is not None and result.ttlt_ms is not None
    assert 0 < result.ttfb_ms <= result.ttft_ms <= result.ttlt_ms


@pytest.mark.parametrize("name", PROVIDERS)
def test_ttft_is_the_first_delta_not_message_start(sim: RunningSimulator, name: str) -> None:
    result = _call(sim, name, headers={"x-sim-ttfb-ms": "0", "x-sim-ttft-ms": "200"})
    assert result.ok and result.ttft_ms is not None and result.ttfb_ms is not None
    assert 150 < result.ttft_ms - result.ttfb_ms < 300  # wide tolerance: correctness, not a benchmark


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize(
    ("fault", "code", "partial"),
    [
        ("rate_limit", "rate_limited", False),
        ("overloaded", "overloaded", False),
        ("server_error", "server_error", False),
        ("bad_request", "bad_request", False),
        ("reset", "connection", False),
        ("stream_error", "stream_error", True),
        ("stall", "stall", True),
    ],
)
def test_each_fault_maps_to_its_error_code(
    sim: RunningSimulator, name: str, fault: str, code: str, partial: bool
) -> None:
    result = _call(sim, name, headers={"x-sim-fault": fault, "x-sim-retry-after": "7"})
    assert result.error_code == code and code in ERROR_CODES
    assert result.partial is partial and bool(result.text) is partial  # partial text kept, and flagged
    assert result.retry_after_s == (7.0 if fault == "rate_limit" else None)
    assert "sk-secret-123" not in (result.error_detail or "")


@pytest.mark.parametrize("name", PROVIDERS)
def test_tool_calls_come_back_parsed(sim: RunningSimulator, name: str) -> None:
    request = normalize_request_body(
        "anthropic.messages",
        {
            "model": "m",
            "max_tokens": 400,
            "messages": [{"role": "user", "content": "find sharding docs"}],
            "tools": [
                {
                    "name": "search",
                    "input_schema": {
                        "type": "object",
                        "properties": {"q": {"type": "string"}},
                        "required": ["q"],
                    },
                }
            ],
            "tool_choice": {"type": "any"},
        },
    )
    result = _call(sim, name, request)
    assert result.ok and result.stop_reason == "tool_use"
    assert [c.name for c in result.tool_calls] == ["search"]
    assert result.tool_calls[0].input is not None and set(result.tool_calls[0].input) == {"q"}


@pytest.mark.parametrize("name", ["anthropic", "openai"])  # the SDK's httpx2 and plain httpx
def test_an_arrival_watch_finds_the_protocol_under_a_real_connection(
    sim: RunningSimulator, name: str
) -> None:
    """`wire_timing` stamps chunks at the protocol under httpcore's anyio stream (private attributes of both
    httpcore flavours): a version that moves it would silently put the loop's turn back into TTFT."""
    lib: Any = httpx_of(name)

    async def watch_one() -> tuple[ArrivalWatch | None, asyncio.Protocol]:
        async with lib.AsyncClient() as client, client.stream("GET", f"{sim.base_url}/health") as response:
            watch = ArrivalWatch.watch(response, time.perf_counter)
            await response.aread()
            if watch is not None:
                watch.end()
            return watch, response.extensions["network_stream"]._stream._protocol

    watch, protocol = asyncio.run(watch_one())
    assert watch is not None and "data_received" not in vars(protocol)


def test_registry_knows_the_builtins_and_names_them_on_error() -> None:
    assert {"anthropic", "openai"} <= set(provider_names())
    with pytest.raises(
        UnknownProviderError, match=r"provider: expected one of anthropic, openai.*found 'gemini'"
    ):
        create_provider("gemini", ProviderConfig())


def test_the_first_provider_takes_the_heap_out_of_full_collections() -> None:
    """A full collection walked the SDKs' ~180k import-time objects (87-107 ms CPU in bench_simulator's
    client), a pause inside every TTFT it overlapped; after the process's first provider a pass walks only
    what is allocated later, and later providers freeze nothing more."""
    settle_heap.cache_clear()  # as in a fresh process
    config = ProviderConfig(base_url="http://127.0.0.1:9", api_key=SecretStr("k"))
    create_provider("anthropic", config)
    frozen = gc.get_freeze_count()
    assert frozen > 10_000 and len(gc.get_objects()) < 1_000
    created_later = [[n] for n in range(2_000)]
    create_provider("anthropic", config)
    assert gc.get_freeze_count() <= frozen and len(gc.get_objects()) > len(created_later)


def test_config_from_settings_takes_url_and_key_and_never_shows_the_key() -> None:
    settings = Settings(ANTHROPIC_API_KEY="sk-ant-xyz", anthropic_base_url="http://sim:1")
    config = config_from_settings("anthropic", settings, stall_timeout_s=5.0)
    assert config.base_url == "http://sim:1" and config.stall_timeout_s == 5.0
    assert config.api_key is not None and config.api_key.get_secret_value() == "sk-ant-xyz"
    assert "sk-ant-xyz" not in repr(config)


def test_sampling_fields_the_sdk_signature_lacks_still_reach_the_api(sim: RunningSimulator) -> None:
    """The installed SDK's `messages.create` may trail the API (no `temperature`): they go in extra_body."""
    from shadowlab.providers.anthropic import split_sdk_arguments

    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 50,
        "temperature": 0.2,
        "top_k": 5,
        "stream": True,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    known, extra = split_sdk_arguments(body)
    assert {"model", "max_tokens", "messages"} <= set(known)
    assert "stream" not in known and "stream" not in extra
    assert set(known) | set(extra) == set(body) - {"stream"}

    request = normalize_request_body("anthropic.messages", {k: v for k, v in body.items() if k != "stream"})
    result = _call(sim, "anthropic", request)
    assert result.ok, result.error_detail
    assert result.text


# Clock-free: a transport that answers with a stream head and the first event, then raises a read timeout on
# cue (as a stalled server would), or raises before any head. The classification may not depend on which
# exception type the installed SDK wraps the timeout in.
_ANTHROPIC_START = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
    b'"role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,'
    b'"usage":{"input_tokens":5,"output_tokens":1}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"Half an"}}\n\n'
)
_OPENAI_START = (
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":"Half an"},"finish_reason":null}]}\n\n'
)
_RESPONSES_START = (
    b'event: response.created\ndata: {"type":"response.created","sequence_number":0,'
    b'"response":{"id":"resp_1","status":"in_progress","output":[]}}\n\n'
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":1,'
    b'"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Half an"}\n\n'
)


def _transport(name: str, *, head: bool) -> object:
    """The provider's httpx flavour's MockTransport: a 200 SSE head and one event, then ReadTimeout."""
    lib: Any = httpx_of(name)
    first = {"openai": _OPENAI_START, "openai_responses": _RESPONSES_START}.get(name, _ANTHROPIC_START)

    class StallsAfterFirstEvent(lib.AsyncByteStream):  # type: ignore[misc]
        async def __aiter__(self) -> Any:
            yield first
            raise lib.ReadTimeout("read timed out")

    def handle(request: Any) -> Any:
        if not head:
            raise lib.ReadTimeout("read timed out", request=request)
        return lib.Response(
            200, headers={"content-type": "text/event-stream"}, stream=StallsAfterFirstEvent()
        )

    return lib.MockTransport(handle)


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize(("head", "code"), [(True, "stall"), (False, "timeout")])
def test_timeout_is_a_stall_iff_the_head_arrived(name: str, head: bool, code: str) -> None:
    config = ProviderConfig(
        base_url="http://mock", api_key=SecretStr("k"), transport=_transport(name, head=head)
    )
    result = complete_once(name, config, REQUEST)
    assert result.error_code == code, result.error_detail
    assert result.partial is head and result.text == ("Half an" if head else "")
    assert ("stream stopped" if head else "no response head") in (result.error_detail or "")
