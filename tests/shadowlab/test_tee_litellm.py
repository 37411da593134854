"""The tee's LiteLLM callback: real litellm calls to the simulator over HTTP, with `ShadowlabLogger`
registered, leave captures that validate and normalise; the proxy's `config.yaml` block in docs/tee.md
resolves to the logger the way the proxy resolves it."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

import shadowlab_tee as tee
from shadowlab.apis import normalize_request, usage_from_capture
from shadowlab.capture import parse_capture_bytes
from simulator import RunningSimulator
from tests.support.tee_captures import delivered, request_of, response_of
from tests.support.waiting import wait_for

# litellm would fetch its price map from GitHub at import; its own backup copy is enough here.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm  # noqa: E402  (in the dev extra: uv.lock)
from litellm.integrations.custom_logger import CustomLogger  # noqa: E402
from litellm.proxy.types_utils.utils import get_instance_fn  # noqa: E402

import shadowlab_tee.litellm as tee_litellm  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs" / "tee.md"
MESSAGES = [{"role": "user", "content": "Which index suits range scans?"}]
# Pydantic warns about litellm's own TypedDicts when litellm builds their schemas on its first calls.
# litellm's stream handler reads a pydantic attribute pydantic 2.11 deprecated.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Items? .* the `ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings(
        "ignore:Accessing the 'model_(computed_)?fields' attribute on the instance:DeprecationWarning"
    ),
]


def offered(sink: tee.MemorySink, count: int) -> None:
    """Wait until LiteLLM has called the logger `count` times (it calls them in the background)."""
    wait_for(lambda: sink.stats().offered >= count, f"{count} calls of the logger", timeout_s=20)


@pytest.fixture
def call(sim: RunningSimulator, sink: tee.MemorySink) -> Iterator[dict[str, object]]:
    """litellm with the logger registered; the keyword arguments that point a call at the simulator."""
    # litellm's sync calls take the thread's event loop (`asyncio.get_event_loop()`) and leave it open:
    # give them one closed here, or the next `asyncio.set_event_loop`/`asyncio.run` leaks it as a warning.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    logger = tee_litellm.ShadowlabLogger(sink, tee.Source(service="checkout", route="/ask"))
    assert isinstance(logger, CustomLogger)  # at run time (the tee types it without importing litellm)
    litellm.callbacks.append(logger)
    yield {"model": "openai/gpt-4.1", "api_base": sim.openai_base_url, "api_key": "sk-test-key"}
    litellm.logging_callback_manager.remove_callback_from_all_lists(logger)
    asyncio.set_event_loop(None)
    loop.close()


def test_a_completion_is_captured_as_the_openai_chat_body_litellm_received(
    call: dict[str, object], sink: tee.MemorySink
) -> None:
    answer = litellm.completion(
        messages=MESSAGES, temperature=0.2, max_tokens=60, metadata={"team": "search"}, **call
    )
    offered(sink, 1)
    (capture,) = delivered(sink, 1)
    assert capture.api == "openai.chat" and capture.request_id == answer._hidden_params["litellm_call_id"]
    assert request_of(capture) == {
        "model": "gpt-4.1", "messages": MESSAGES, "temperature": 0.2, "max_tokens": 60,
    }  # fmt: skip
    assert capture.source.service == "checkout" and capture.source.route == "/ask"
    assert capture.source.tags == {"litellm_provider": "openai"}
    response = response_of(capture)
    assert response["text"] == answer.choices[0].message.content and response["stop_reason"] == "stop"
    usage = usage_from_capture(capture)
    assert usage is not None and usage.output_tokens == answer.usage.completion_tokens
    assert response["ttft_ms"] is None and response["latency_ms"] > 0
    assert normalize_request(capture).model == "gpt-4.1"
    assert "sk-test-key" not in sink.records()[0][1].decode()


def test_a_stream_is_captured_from_its_assembled_response_with_ttft(
    call: dict[str, object], sink: tee.MemorySink
) -> None:
    chunks = list(
        litellm.completion(messages=MESSAGES, stream=True, stream_options={"include_usage": True}, **call)
    )
    offered(sink, 1)
    (capture,) = delivered(sink, 1)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert response_of(capture)["text"] == text and request_of(capture)["stream"] is True
    assert request_of(capture)["stream_options"] == {"include_usage": True}
    assert 0 < response_of(capture)["ttft_ms"] <= response_of(capture)["latency_ms"]
    assert usage_from_capture(capture) is not None


def test_an_async_call_is_captured_once(call: dict[str, object], sink: tee.MemorySink) -> None:
    async def awaited_call() -> Any:
        reply = await litellm.acompletion(messages=MESSAGES, **call)
        while sink.stats().offered < 1:  # the async callback runs as a task on this loop
            await asyncio.sleep(0.01)
        return reply

    answer = asyncio.run(asyncio.wait_for(awaited_call(), timeout=20))
    (capture,) = delivered(sink, 1)
    assert response_of(capture)["text"] == answer.choices[0].message.content
    assert "stream" not in request_of(capture)


def test_a_failure_inside_the_logger_is_counted_never_raised(sink: tee.MemorySink) -> None:
    logger = tee_litellm.ShadowlabLogger(sink, "checkout")
    logger.log_success_event({"call_type": "completion"}, None, None, None)  # no model, no times
    stats = sink.stats()
    assert stats.failed == 1 and stats.offered == 1 and "KeyError" in (stats.last_error or "")


def test_a_model_response_without_usage_is_captured_with_usage_absent(sink: tee.MemorySink) -> None:
    logger = tee_litellm.ShadowlabLogger(sink, "checkout")
    message = {"role": "assistant", "content": "B-tree"}
    answer = litellm.ModelResponse(
        model="gpt-4.1", choices=[{"index": 0, "finish_reason": "stop", "message": message}]
    )
    assert not hasattr(answer, "usage")  # litellm leaves the attribute out, not None
    when = datetime.now()
    kwargs = {"call_type": "completion", "model": "gpt-4.1", "messages": MESSAGES, "litellm_call_id": "c2"}
    logger.log_success_event(kwargs, answer, when, when)
    (capture,) = delivered(sink, 1)
    response = response_of(capture)
    assert response["text"] == "B-tree" and response["usage"] is None
    assert response["usage_status"] == "absent" and usage_from_capture(capture) is None
    assert sink.stats().failed == 0


def test_the_proxy_config_in_the_docs_resolves_to_a_logger_writing_jsonl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.S)
    (config,) = [yaml.safe_load(block) for block in blocks if "litellm_settings" in block]
    (path,) = config["litellm_settings"]["callbacks"]
    monkeypatch.setenv(tee_litellm.ENV_JSONL, str(tmp_path / "captures.jsonl"))
    monkeypatch.setenv(tee_litellm.ENV_SERVICE, "gateway")
    found = get_instance_fn(path)
    assert isinstance(found, CustomLogger) and isinstance(found, tee_litellm.ShadowlabLogger)
    logger: tee_litellm.ShadowlabLogger = found
    try:
        assert isinstance(logger.sink, tee.JsonlSink) and logger.source.service == "gateway"
        when = datetime.now()
        kwargs = {
            "call_type": "completion",
            "model": "gpt-4.1",
            "messages": MESSAGES,
            "litellm_call_id": "c1",
        }
        logger.log_success_event(
            kwargs,
            litellm.ModelResponse(model="gpt-4.1", usage=litellm.Usage(prompt_tokens=3, completion_tokens=4)),
            when,
            when,
        )
        assert logger.sink.flush(timeout=10), logger.sink.stats()
        capture = parse_capture_bytes((tmp_path / "captures.jsonl").read_bytes().strip())
        assert capture.request_id == "c1" and capture.source.service == "gateway"
    finally:
        logger.sink.close(timeout=5)
