"""Anthropic Messages through the official SDK, streamed, with SDK retries off (the limiter owns retries)."""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Mapping
from typing import Any, ClassVar

import anthropic

from shadowlab.apis import Api
from shadowlab.apis.anthropic import AnthropicStreamUsage
from shadowlab.providers.base import (
    ErrorCode,
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

__all__ = ["SDK_HTTPX", "AnthropicProvider", "has_content", "split_sdk_arguments"]

# Body fields the installed SDK takes as keywords. The SDK's signature trails the API (2.12 has no
# `temperature`, `top_p` or `top_k`), so every other field travels in `extra_body`, unchanged.
_SDK_FIELDS = frozenset(inspect.signature(anthropic.resources.messages.AsyncMessages.create).parameters) - {
    "self",
    "extra_headers",
    "extra_query",
    "extra_body",
    "timeout",
    "stream",
}
# The httpx flavour the installed SDK is built on (`httpx2` from 2.17, `httpx` before).
SDK_HTTPX = importlib.import_module(anthropic.DefaultAsyncHttpxClient.__mro__[1].__module__.split(".")[0])


def has_content(data: bytes) -> bool:
    """A `content_block_delta` data line with non-empty text or thinking (TTFT)."""
    if b"text_delta" not in data and b"thinking_delta" not in data:
        return False
    try:
        event = json.loads(data)
        delta = event["delta"] if event.get("type") == "content_block_delta" else {}
        return bool(delta.get("text") if delta.get("type") == "text_delta" else delta.get("thinking"))
    except (ValueError, TypeError, AttributeError, KeyError):
        return False


def split_sdk_arguments(body: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a Messages body into the SDK's keyword arguments and the rest (sent as `extra_body`)."""
    known = {k: v for k, v in body.items() if k in _SDK_FIELDS}
    extra = {k: v for k, v in body.items() if k not in _SDK_FIELDS and k != "stream"}
    return known, extra


@register_provider("anthropic")
class AnthropicProvider(StreamingProvider):
    """`messages.create(stream=True)` on `AsyncAnthropic(max_retries=0)`; events folded by hand so timing is
    taken when each raw event arrives."""

    name = "anthropic"
    api: ClassVar[Api] = "anthropic.messages"

    def __init__(self, config: ProviderConfig) -> None:
        self._stall_timeout_s = config.stall_timeout_s
        self._client = anthropic.AsyncAnthropic(
            api_key=config.api_key.get_secret_value() if config.api_key else "none",
            base_url=config.base_url,
            max_retries=0,
            timeout=anthropic.Timeout(
                config.timeout_s, connect=config.connect_timeout_s, read=config.stall_timeout_s
            ),
            default_headers=dict(config.extra_headers),
            # the SDK's own client (limits, keep-alive socket options) unless a transport is given
            http_client=anthropic.DefaultAsyncHttpxClient(
                event_hooks=timing_hooks(SDK_HTTPX, has_content),
                **({"transport": config.transport} if config.transport else {}),
            ),
        )
        self._clock = config.clock

    async def aclose(self) -> None:
        await self._client.close()

    async def complete_raw(
        self,
        body: Mapping[str, Any],
        *,
        untranslated: tuple[str, ...] = (),
        extra_headers: Mapping[str, str] | None = None,
    ) -> ProviderResult:
        """Stream a Messages API body sent as given (same-API replay keeps `cache_control` and the rest)."""
        known, extra_body = split_sdk_arguments(body)
        state = StreamState(self.name, body["model"], untranslated, self._clock)
        usage = AnthropicStreamUsage()
        blocks: dict[int, dict[str, Any]] = {}
        state.begin()
        stream: anthropic.AsyncStream[Any] | None = None
        try:
            with timed_call(state):
                stream = await self._client.messages.create(
                    **known,
                    stream=True,
                    extra_headers=dict(extra_headers or {}),
                    extra_body=extra_body or None,
                )
            state.headers(stream.response.headers.items(), stream.response.status_code)
            await self._read(stream, state, usage, blocks)
        except anthropic.APIStatusError as exc:
            state.fail(*_status_error(exc))
        except anthropic.APITimeoutError as exc:  # SDKs from 2.17 wrap a read timeout inside the stream too
            state.timed_out(self._stall_timeout_s, _describe(exc.__cause__ or exc))
        except anthropic.APIConnectionError as exc:
            state.fail("connection", _describe(exc.__cause__ or exc))
        except (
            Exception
        ) as exc:  # transport errors raised while the stream is read are not wrapped by the SDK
            if "Timeout" in type(exc).__name__:
                state.timed_out(self._stall_timeout_s, _describe(exc))
            else:
                state.fail(*_transport_error(exc))
        finally:
            if stream is not None:  # a stream that failed midway still holds its connection: release it
                await stream.close()
        state.tool_calls = tuple(
            _tool_call(block) for _, block in sorted(blocks.items()) if block["type"] == "tool_use"
        )
        try:
            state.usage = usage.usage
        except UsageError:
            state.usage = None
        return state.result()

    @classmethod
    async def _read(
        cls,
        stream: anthropic.AsyncStream[Any],
        state: StreamState,
        usage: AnthropicStreamUsage,
        blocks: dict[int, dict[str, Any]],
    ) -> None:
        async for event in stream:
            kind = event.type
            if kind == "content_block_delta":
                cls._delta(event.index, event.delta, blocks, state)
            elif kind == "content_block_start":
                blocks[event.index] = event.content_block.to_dict()
                blocks[event.index]["json"] = ""
            elif kind == "message_start":
                state.first_byte()
                state.response_id = event.message.id
                usage.add(event.to_dict())
            elif kind == "message_delta":
                state.stop_reason = event.delta.stop_reason
                usage.add(event.to_dict())
        state.end()

    @staticmethod
    def _delta(index: int, delta: Any, blocks: dict[int, dict[str, Any]], state: StreamState) -> None:
        kind = delta.type
        if kind == "text_delta":
            state.add_text(delta.text)
        elif kind == "thinking_delta":
            state.add_thinking(delta.thinking)
        elif kind == "input_json_delta" and index in blocks:
            blocks[index]["json"] += delta.partial_json


def _tool_call(block: dict[str, Any]) -> ToolCall:
    raw = block["json"] or "{}"
    return ToolCall(id=block["id"], name=block["name"], input=parse_arguments(raw), raw_arguments=raw)


def _status_error(exc: anthropic.APIStatusError) -> tuple[ErrorCode, str, int | None, float | None]:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    error = error if isinstance(error, dict) else {}
    kind = error.get("type") or "error"
    message = error.get("message") or str(exc)
    if exc.status_code == 200:  # an `error` event inside a 200 stream
        return "stream_error", f"{kind}: {message}", None, None
    retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
    return (
        error_code_for_status(exc.status_code),
        f"{exc.status_code} {kind}: {message}",
        exc.status_code,
        retry_after,
    )


def _transport_error(exc: Exception) -> tuple[ErrorCode, str]:
    name = type(exc).__name__
    if any(part in name for part in ("Protocol", "Read", "Network", "Connect", "Closed")) or isinstance(
        exc, OSError
    ):
        return "connection", _describe(exc)
    if isinstance(exc, ValueError):
        return "invalid_response", _describe(exc)
    raise exc


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
