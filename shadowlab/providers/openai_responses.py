"""The OpenAI Responses API over httpx SSE (POST `{base_url}/responses`): OpenAI, and servers that speak it
(vLLM, Ollama, LiteLLM's proxy). Same base URL and key as the `openai` provider."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from shadowlab.apis import Api
from shadowlab.apis.openai_responses import stop_reason, usage_from_responses
from shadowlab.providers.base import ProviderResult, ToolCall
from shadowlab.providers.openai_compat import OpenAICompatProvider, StreamErrorEvent
from shadowlab.providers.registry import register_provider
from shadowlab.providers.stream_state import StreamState, parse_arguments

__all__ = ["OpenAIResponsesProvider"]

# Deltas that carry the answer's reasoning: OpenAI streams summaries, open-weight servers the reasoning text.
_THINKING_DELTAS = frozenset({"response.reasoning_summary_text.delta", "response.reasoning_text.delta"})
_TEXT_DELTAS = frozenset({"response.output_text.delta", "response.refusal.delta"})
_ENDS = frozenset({"response.completed", "response.incomplete"})

_CONTENT_DELTAS = _TEXT_DELTAS | _THINKING_DELTAS


@register_provider("openai_responses")
class OpenAIResponsesProvider(OpenAICompatProvider):
    """Streams with `stream: true`; TTFB is the first event, TTFT the first non-empty output-text or
    reasoning delta; usage (cached and reasoning tokens) and the stop reason come with the last event."""

    name = "openai_responses"
    api: ClassVar[Api] = "openai.responses"
    settings_name: ClassVar[str] = "openai"  # `SHADOWLAB_OPENAI_BASE_URL`, `OPENAI_API_KEY`

    @staticmethod
    def has_content(data: bytes) -> bool:
        """An output-text, refusal or reasoning delta event with a non-empty delta (TTFT), as `_apply` reads
        it."""
        if b".delta" not in data:
            return False
        try:
            event = json.loads(data)
            return event.get("type") in _CONTENT_DELTAS and bool(event.get("delta"))
        except (ValueError, AttributeError):
            return False

    def translate_options(self) -> dict[str, Any]:
        return {}

    async def complete_raw(
        self,
        body: Mapping[str, Any],
        *,
        untranslated: tuple[str, ...] = (),
        extra_headers: Mapping[str, str] | None = None,
    ) -> ProviderResult:
        """Stream a Responses body sent as given (same-API replay), with `stream: true`."""
        calls: dict[int, dict[str, str]] = {}

        async def read(response: httpx.Response, state: StreamState) -> None:
            await _read_events(response, state, calls)

        body = {**body, "stream": True}
        state = await self.post_stream("responses", body, untranslated, extra_headers, read)
        state.tool_calls = tuple(
            ToolCall(
                id=c["id"],
                name=c["name"],
                input=parse_arguments(c["arguments"]),
                raw_arguments=c["arguments"],
            )
            for _, c in sorted(calls.items())
        )
        return state.result()


async def _read_events(
    response: httpx.Response, state: StreamState, calls: dict[int, dict[str, str]]
) -> None:
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        state.first_byte()
        if data == "[DONE]":  # not sent by OpenAI; some proxies add it (read on: see openai_compat)
            continue
        event = json.loads(data)
        if not isinstance(event, dict):
            raise ValueError(f"stream event: expected an object, found {data[:80]}")
        _apply(event, state, calls)
    state.end()


def _apply(event: dict[str, Any], state: StreamState, calls: dict[int, dict[str, str]]) -> None:
    kind = event.get("type")
    if kind in _TEXT_DELTAS:
        state.add_text(event.get("delta") or "")
    elif kind in _THINKING_DELTAS:
        state.add_thinking(event.get("delta") or "")
    elif kind in ("response.output_item.added", "response.output_item.done"):
        item = event.get("item") or {}
        if item.get("type") == "function_call":
            slot = calls.setdefault(event.get("output_index", len(calls)), {"arguments": ""})
            slot.update(id=item.get("call_id") or "", name=item.get("name") or "")
            if kind.endswith(".done") or item.get("arguments"):
                slot["arguments"] = item.get("arguments") or slot["arguments"]
    elif kind == "response.function_call_arguments.delta":
        slot = calls.setdefault(event.get("output_index", 0), {"id": "", "name": "", "arguments": ""})
        slot["arguments"] += event.get("delta") or ""
    elif kind == "response.created":
        state.response_id = (event.get("response") or {}).get("id")
    elif kind in _ENDS:
        _finish(event.get("response") or {}, state, called_tools=bool(calls))
    elif kind in ("error", "response.failed"):
        raise StreamErrorEvent(_error_text(event))


def _finish(response: Mapping[str, Any], state: StreamState, *, called_tools: bool) -> None:
    state.response_id = response.get("id") or state.response_id
    if response.get("usage"):
        state.usage = usage_from_responses(response["usage"])
    incomplete = response.get("incomplete_details") or {}
    state.stop_reason = stop_reason(response.get("status"), incomplete.get("reason"), called_tools)


def _error_text(event: Mapping[str, Any]) -> str:
    """`code: message` of an `error` event, or of the error of a failed response."""
    error = (event.get("response") or {}).get("error") if event.get("type") == "response.failed" else event
    if not isinstance(error, Mapping):
        return str(error)
    return f"{error.get('code') or error.get('type') or 'error'}: {error.get('message')}"
