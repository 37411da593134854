"""Normalised request → the body of each target API, listing what could not be carried over (DESIGN §5).

`dropped` starts with what normalisation already dropped (`NormalizedRequest.untranslated`, e.g. cache_control
markers) and adds what the target cannot express (thinking on OpenAI, top_k on OpenAI, reasoning_effort on
Anthropic, images in OpenAI tool results, ...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from shadowlab.normalize import (
    Block,
    DocumentBlock,
    ImageBlock,
    Message,
    NormalizedRequest,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)

__all__ = ["DEFAULT_MAX_TOKENS", "TargetApi", "Translation", "to_anthropic", "to_openai", "translate"]

TargetApi = Literal["anthropic.messages", "openai.chat"]
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI requests may omit it
_OPENAI_MAX_STOP = 4


@dataclass(frozen=True)
class Translation:
    body: dict[str, Any]
    dropped: tuple[str, ...]


def translate(
    request: NormalizedRequest,
    target: TargetApi,
    *,
    model: str | None = None,
    max_tokens_field: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens",
) -> Translation:
    """The request as a body for `target`."""
    if target == "anthropic.messages":
        return to_anthropic(request, model=model)
    return to_openai(request, model=model, max_tokens_field=max_tokens_field)


# --- Anthropic Messages ---------------------------------------------------------------------------------
def to_anthropic(request: NormalizedRequest, *, model: str | None = None) -> Translation:
    """An Anthropic Messages API body."""
    dropped = list(request.untranslated)
    body: dict[str, Any] = {"model": model or request.model}
    if request.max_output_tokens is None:
        dropped.append(f"max_tokens missing: set to {DEFAULT_MAX_TOKENS}")
    body["max_tokens"] = request.max_output_tokens or DEFAULT_MAX_TOKENS
    if request.system:
        body["system"] = request.system
    messages = []
    for index, message in enumerate(request.messages):
        content = [
            b for b in (_anthropic_block(block, dropped) for block in message.content) if b is not None
        ]
        if content:
            messages.append({"role": message.role, "content": content})
        else:
            dropped.append(f"messages[{index}]: empty {message.role} turn")
    body["messages"] = messages
    if request.tools:
        body["tools"] = [
            {
                "name": t.name,
                **({"description": t.description} if t.description else {}),
                "input_schema": t.input_schema or {"type": "object", "properties": {}},
            }
            for t in request.tools
        ]
    choice = _anthropic_tool_choice(request)
    if choice is not None:
        body["tool_choice"] = choice
    if request.temperature is not None:
        body["temperature"] = min(request.temperature, 1.0)
        if request.temperature > 1.0:
            dropped.append(f"temperature {request.temperature:g} clamped to 1 (Anthropic's maximum)")
    _copy(request, body, top_p="top_p", top_k="top_k")
    if request.stop_sequences:
        body["stop_sequences"] = list(request.stop_sequences)
    if request.thinking_budget_tokens is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": request.thinking_budget_tokens}
    if request.reasoning_effort is not None:
        dropped.append(f"reasoning_effort={request.reasoning_effort}")
    return Translation(body, tuple(dropped))


def _anthropic_tool_choice(request: NormalizedRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None and request.parallel_tool_calls is not False:
        return None
    out: dict[str, Any] = {"type": choice.type if choice else "auto"}
    if choice is not None and choice.type == "tool":
        out["name"] = choice.name
    if request.parallel_tool_calls is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _media_source(block: ImageBlock | DocumentBlock) -> dict[str, Any] | None:
    if block.data is not None:
        return {
            "type": "base64",
            "media_type": block.media_type or "application/octet-stream",
            "data": block.data,
        }
    if block.url is not None:
        return {"type": "url", "url": block.url}
    if isinstance(block, DocumentBlock) and block.text is not None:
        return {"type": "text", "media_type": block.media_type or "text/plain", "data": block.text}
    return None


def _anthropic_block(block: Block, dropped: list[str]) -> dict[str, Any] | None:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ImageBlock | DocumentBlock):
        source = _media_source(block)
        if source is None:
            dropped.append(f"{block.type} without data or url")
            return None
        out: dict[str, Any] = {"type": block.type, "source": source}
        if isinstance(block, DocumentBlock) and block.title:
            out["title"] = block.title
        return out
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if isinstance(block, ToolResultBlock):
        parts = [p for p in (_anthropic_block(part, dropped) for part in block.content) if p is not None]
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": block.tool_use_id, "content": parts}
        if block.is_error:
            result["is_error"] = True
        return result
    if block.redacted_data is not None:
        return {"type": "redacted_thinking", "data": block.redacted_data}
    if block.signature is not None:
        return {"type": "thinking", "thinking": block.text, "signature": block.signature}
    dropped.append("thinking block without signature")
    return None


# --- OpenAI chat completions ----------------------------------------------------------------------------
def to_openai(
    request: NormalizedRequest,
    *,
    model: str | None = None,
    max_tokens_field: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens",
) -> Translation:
    """An OpenAI chat completions body (OpenAI, vLLM, Ollama, LiteLLM's proxy, ...)."""
    dropped = list(request.untranslated)
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for message in request.messages:
        messages += _openai_messages(message, dropped)
    body: dict[str, Any] = {"model": model or request.model, "messages": messages}
    if request.max_output_tokens is not None:
        body[max_tokens_field] = request.max_output_tokens
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    **({"description": t.description} if t.description else {}),
                    "parameters": t.input_schema,
                },
            }
            for t in request.tools
        ]
    choice = request.tool_choice
    if choice is not None:
        body["tool_choice"] = (
            {"type": "function", "function": {"name": choice.name}}
            if choice.type == "tool"
            else {"auto": "auto", "any": "required", "none": "none"}[choice.type]
        )
    if request.parallel_tool_calls is not None and request.tools:
        body["parallel_tool_calls"] = request.parallel_tool_calls
    _copy(request, body, temperature="temperature", top_p="top_p")
    if request.top_k is not None:
        dropped.append(f"top_k={request.top_k}")
    if request.stop_sequences:
        body["stop"] = list(request.stop_sequences[:_OPENAI_MAX_STOP])
        if len(request.stop_sequences) > _OPENAI_MAX_STOP:
            dropped.append(f"stop sequences beyond the first {_OPENAI_MAX_STOP}")
    if request.thinking_budget_tokens is not None:
        dropped.append(f"thinking (budget {request.thinking_budget_tokens} tokens)")
    if request.reasoning_effort is not None:
        body["reasoning_effort"] = request.reasoning_effort
    return Translation(body, tuple(dropped))


def _openai_messages(message: Message, dropped: list[str]) -> list[dict[str, Any]]:
    """One normalised turn as OpenAI messages: tool results become `tool` messages, placed first."""
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in message.content:
        if isinstance(block, ToolResultBlock):
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": block.tool_use_id,
                    "content": _tool_result_text(block, dropped),
                }
            )
        elif isinstance(block, ToolUseBlock):
            calls.append(
                {
                    "id": block.id,
                    "type": "function",
                    "function": {"name": block.name, "arguments": json.dumps(block.input)},
                }
            )
        elif isinstance(block, ThinkingBlock):
            dropped.append("thinking block")
        else:
            part = _openai_part(block, dropped)
            if part is not None:
                parts.append(part)
    if message.role == "assistant":
        texts = [p["text"] for p in parts if p["type"] == "text"]
        if len(texts) < len(parts):
            dropped.append("non-text content in an assistant turn")
        turn: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
        if calls:
            turn["tool_calls"] = calls
        if texts or calls:
            out.append(turn)
    elif parts:
        only_text = len(parts) == 1 and parts[0]["type"] == "text"
        out.append({"role": "user", "content": parts[0]["text"] if only_text else parts})
    return out


def _tool_result_text(block: ToolResultBlock, dropped: list[str]) -> str:
    texts = []
    for part in block.content:
        if isinstance(part, TextBlock):
            texts.append(part.text)
        else:
            dropped.append(f"{part.type} in a tool result")
    if block.is_error:
        dropped.append("tool_result is_error flag")
    return "\n\n".join(texts)


def _openai_part(block: TextBlock | ImageBlock | DocumentBlock, dropped: list[str]) -> dict[str, Any] | None:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ImageBlock):
        url = f"data:{block.media_type};base64,{block.data}" if block.data is not None else block.url
        if url is None:
            dropped.append("image without data or url")
            return None
        return {"type": "image_url", "image_url": {"url": url}}
    if block.data is not None:
        file: dict[str, Any] = {
            "file_data": f"data:{block.media_type or 'application/pdf'};base64,{block.data}"
        }
        if block.title:
            file["filename"] = block.title
        return {"type": "file", "file": file}
    if block.text is not None:
        return {"type": "text", "text": block.text}
    dropped.append("document by url")
    return None


def _copy(request: NormalizedRequest, body: dict[str, Any], **names: str) -> None:
    for attr, key in names.items():
        value = getattr(request, attr)
        if value is not None:
            body[key] = value
