"""OpenAI-compatible chat completions over httpx SSE: OpenAI, vLLM, Ollama, LiteLLM's proxy, other vendors."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import httpx

from shadowlab.apis import Api
from shadowlab.apis.openai_chat import stop_reason, usage_from_openai
from shadowlab.providers.base import (
    ProviderConfig,
    ProviderResult,
    StreamingProvider,
    ToolCall,
    error_code_for_status,
    parse_retry_after,
)
from shadowlab.providers.registry import register_provider
from shadowlab.providers.stream_state import StreamState, parse_arguments
from shadowlab.providers.wire_timing import timed_call, timing_hooks
from shadowlab.usage import UsageError

__all__ = ["DEFAULT_OPENAI_BASE_URL", "OpenAICompatProvider", "StreamErrorEvent"]

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
StreamReader = Callable[[httpx.Response, StreamState], Awaitable[None]]


class StreamErrorEvent(Exception):
    """An error object inside a 200 stream."""


@register_provider("openai")
class OpenAICompatProvider(StreamingProvider):
    """POST `{base_url}/chat/completions` with `stream: true`; TTFT is the first non-empty content or
    reasoning delta (`reasoning_content` / `reasoning`, as vLLM, Ollama and DeepSeek stream it)."""

    name = "openai"
    api: ClassVar[Api] = "openai.chat"

    def __init__(self, config: ProviderConfig) -> None:
        self._config = config
        headers = {"content-type": "application/json", **config.extra_headers}
        if config.api_key is not None:
            headers["authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        self._client = httpx.AsyncClient(
            base_url=(config.base_url or DEFAULT_OPENAI_BASE_URL).rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(
                config.timeout_s, connect=config.connect_timeout_s, read=config.stall_timeout_s
            ),
            limits=httpx.Limits(
                max_connections=config.max_connections, max_keepalive_connections=config.max_connections
            ),
            transport=config.transport,
            event_hooks=timing_hooks(httpx, self.has_content),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    @staticmethod
    def has_content(data: bytes) -> bool:
        """A chunk whose first choice has content or reasoning (TTFT), as `_apply_delta` reads it."""
        if b'"content"' not in data and b'"reasoning' not in data:
            return False
        try:
            choices = json.loads(data).get("choices") or ()
            delta = next((c.get("delta") or {} for c in choices if c.get("index", 0) == 0), {})
            return bool(delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning"))
        except (ValueError, TypeError, AttributeError):
            return False

    def translate_options(self) -> dict[str, Any]:
        return {"max_tokens_field": self._config.max_tokens_field}

    async def complete_raw(
        self,
        body: Mapping[str, Any],
        *,
        untranslated: tuple[str, ...] = (),
        extra_headers: Mapping[str, str] | None = None,
    ) -> ProviderResult:
        """Stream a chat-completions body sent as given (same-API replay); streaming options are added."""
        body = {**body, "stream": True}
        if self._config.stream_usage:
            body["stream_options"] = {"include_usage": True}
        calls: dict[int, dict[str, str]] = {}

        async def read(response: httpx.Response, state: StreamState) -> None:
            await self._read_stream(response, state, calls)

        state = await self.post_stream("chat/completions", body, untranslated, extra_headers, read)
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

    async def post_stream(
        self,
        path: str,
        body: Mapping[str, Any],
        untranslated: tuple[str, ...],
        extra_headers: Mapping[str, str] | None,
        read: StreamReader,
    ) -> StreamState:
        """POST `body` to `path` and `read` the 200 stream into a StreamState; failures become its error."""
        state = StreamState(self.name, body["model"], untranslated, self._config.clock)
        state.begin()
        try:
            with timed_call(state):
                async with self._client.stream(
                    "POST", path, content=json.dumps(body), headers=dict(extra_headers or {})
                ) as response:
                    state.headers(response.headers.items(), response.status_code)
                    if response.status_code >= 400:
                        await response.aread()
                        self._http_error(response, state)
                    else:
                        await read(response, state)
        except httpx.TimeoutException as exc:
            state.timed_out(self._config.stall_timeout_s, type(exc).__name__)
        except httpx.TransportError as exc:
            state.fail("connection", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        except StreamErrorEvent as exc:
            state.fail("stream_error", str(exc))
        except (ValueError, UsageError) as exc:
            state.fail("invalid_response", str(exc))
        return state

    @staticmethod
    def _http_error(response: httpx.Response, state: StreamState) -> None:
        status = response.status_code
        try:
            error = response.json().get("error") or {}
            message = f"{error.get('type') or error.get('code') or 'error'}: {error.get('message')}"
        except (ValueError, AttributeError):
            message = response.text[:300]
        state.fail(
            error_code_for_status(status),
            f"{status} {message}",
            status,
            parse_retry_after(response.headers.get("retry-after")),
        )

    @staticmethod
    async def _read_stream(
        response: httpx.Response, state: StreamState, calls: dict[int, dict[str, str]]
    ) -> None:
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            state.first_byte()
            if data == "[DONE]":  # read on to the end of the body: one left unread closes the connection
                continue
            chunk = json.loads(data)
            if not isinstance(chunk, dict):
                raise ValueError(f"stream chunk: expected an object, found {data[:80]}")
            if chunk.get("error"):
                error = chunk["error"]
                raise StreamErrorEvent(
                    f"{error.get('type') or error.get('code')}: {error.get('message')}"
                    if isinstance(error, dict)
                    else str(error)
                )
            state.response_id = state.response_id or chunk.get("id")
            if chunk.get("usage"):
                state.usage = usage_from_openai(chunk["usage"])
            for choice in chunk.get("choices") or ():
                if choice.get("index", 0) != 0:
                    continue
                _apply_delta(choice.get("delta") or {}, state, calls)
                if choice.get("finish_reason"):
                    state.stop_reason = stop_reason(choice["finish_reason"])
        state.end()


def _apply_delta(delta: dict[str, Any], state: StreamState, calls: dict[int, dict[str, str]]) -> None:
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    if reasoning:
        state.add_thinking(reasoning)
    if delta.get("content"):
        state.add_text(delta["content"])
    for call in delta.get("tool_calls") or ():
        slot = calls.setdefault(call.get("index", 0), {"id": "", "name": "", "arguments": ""})
        function = call.get("function") or {}
        slot["id"] = call.get("id") or slot["id"]
        slot["name"] = function.get("name") or slot["name"]
        slot["arguments"] += function.get("arguments") or ""
