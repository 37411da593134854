"""OpenAI chat completions (`api: openai.chat`): a body normalised to the internal request, the internal
request translated to a body (OpenAI, vLLM, Ollama, LiteLLM's proxy, ...), usage and stop reasons parsed,
an arm applied to a body.

The request models are in `shadowlab.apis.openai_chat_wire`; the registry in `shadowlab.apis`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel

import shadowlab.apis.openai_chat_wire as wire
from shadowlab.apis.internal import (
    DEFAULT_MAX_TOKENS,
    ArmBody,
    Block,
    DocumentBlock,
    ImageBlock,
    Message,
    NormalizedRequest,
    Notes,
    TextBlock,
    ThinkingBlock,
    ToolChoice,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Translation,
    copy_set,
    join_texts,
    result_blocks,
)
from shadowlab.apis.openai_usage import openai_usage
from shadowlab.apis.wire import OtherKind
from shadowlab.usage import Usage

# fmt: off
__all__ = [
    "MaxTokensField", "data_url", "normalize", "stop_reason", "to_openai", "usage_from_openai", "with_arm",
]
# fmt: on

MaxTokensField = Literal["max_completion_tokens", "max_tokens"]  # older servers know only `max_tokens`


# --- the body, normalised -------------------------------------------------------------------------------
# fmt: off
_HANDLED = frozenset({
    "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "max_tokens", "max_completion_tokens",
    "temperature", "top_p", "stop", "reasoning_effort", "n", "stream", "stream_options", "user", "store",
    "metadata",
})
# fmt: on
_OPENAI_MAX_STOP = 4
_CHOICES: dict[str, Literal["auto", "any", "none"]] = {"auto": "auto", "required": "any", "none": "none"}


def normalize(req: wire.OpenAIChatRequest) -> NormalizedRequest:
    """The internal request of a validated chat-completions body."""
    notes = Notes()
    system, messages = _turns(req.messages, notes)
    tools = _tools(req.tools or (), notes)
    if req.n is not None and req.n > 1:
        notes.add(f"n={req.n} (one choice replayed)")
    notes.unmapped(req, _HANDLED)
    stop = req.stop
    return NormalizedRequest(
        source_api="openai.chat",
        model=req.model,
        system=join_texts(system) if system else None,
        messages=tuple(messages),
        tools=tuple(tools),
        tool_choice=_tool_choice(req.tool_choice, notes),
        parallel_tool_calls=req.parallel_tool_calls,
        temperature=req.temperature,
        top_p=req.top_p,
        stop_sequences=(stop,) if isinstance(stop, str) else tuple(stop or ()),
        max_output_tokens=req.max_tokens if req.max_completion_tokens is None else req.max_completion_tokens,
        reasoning_effort=req.reasoning_effort,
        untranslated=notes.result(),
    )


def _turns(wire_messages: list[Any], notes: Notes) -> tuple[list[str], list[Message]]:
    """System texts (from system and developer messages, wherever they stand) and the other turns."""
    system: list[str] = []
    messages: list[Message] = []
    for message in wire_messages:
        notes.extras(message, f"{message.role} message")
        if getattr(message, "name", None) is not None:
            notes.add("message name")
        if isinstance(message, wire.OpenAISystemMessage):
            if messages:
                notes.add("system message moved to the start")
            blocks = _content(message.content, notes)
            system.append(join_texts(b.text for b in blocks if isinstance(b, TextBlock)))
            if not all(isinstance(b, TextBlock) for b in blocks):
                notes.add("non-text system content")
        elif isinstance(message, wire.OpenAIToolMessage):
            parts = result_blocks(_content(message.content, notes))
            result = ToolResultBlock(tool_use_id=message.tool_call_id, content=parts)
            last = messages[-1].content if messages and messages[-1].role == "user" else ()
            if last and all(isinstance(b, ToolResultBlock) for b in last):
                messages[-1] = Message(
                    role="user", content=(*last, result)
                )  # one user turn, as Anthropic needs
            else:
                messages.append(Message(role="user", content=(result,)))
        elif isinstance(message, wire.OpenAIAssistantMessage):
            content = () if message.content is None else _content(message.content, notes)
            calls = [_tool_use(call, notes) for call in message.tool_calls or ()]
            content += tuple(call for call in calls if call is not None)
            messages.append(Message(role="assistant", content=content))
        elif isinstance(message, wire.OpenAIUserMessage):
            messages.append(Message(role="user", content=_content(message.content, notes)))
    return system, messages


def _tools(wire_tools: Iterable[Any], notes: Notes) -> list[ToolSpec]:
    tools: list[ToolSpec] = []
    for tool in wire_tools:
        if isinstance(tool, wire.OpenAIFunctionTool):
            fn = tool.function
            notes.extras(fn, "function")
            tools.append(ToolSpec(name=fn.name, description=fn.description, input_schema=fn.parameters or {}))
        else:
            notes.add(f"tool {tool.type}")
    return tools


def _tool_choice(choice: str | BaseModel | None, notes: Notes) -> ToolChoice | None:
    if isinstance(choice, str):
        return ToolChoice(type=_CHOICES[choice])
    if isinstance(choice, wire.OpenAINamedToolChoice):
        return ToolChoice(type="tool", name=choice.function.name)
    if isinstance(choice, OtherKind):
        notes.add(f"tool_choice {choice.type}")
    return None


def _tool_use(call: wire.OpenAIToolCall | OtherKind, notes: Notes) -> ToolUseBlock | None:
    if isinstance(call, OtherKind):
        notes.add(f"tool call {call.type}")
        return None
    fn = call.function
    return ToolUseBlock(id=call.id, name=fn.name, input=wire.parse_tool_arguments(fn.arguments))


def _content(content: wire.OpenAIContent, notes: Notes) -> tuple[Block, ...]:
    if isinstance(content, str):
        return (TextBlock(text=content),)
    blocks: list[Block] = []
    for part in content:
        notes.extras(part, f"{part.type} part")
        match part:
            case wire.OpenAITextPart(text=text):
                blocks.append(TextBlock(text=text))
            case wire.OpenAIImagePart(image_url=image):
                if image.detail not in (None, "auto"):
                    notes.add(f"image detail={image.detail}")
                media_type, data = data_url(image.url)
                blocks.append(ImageBlock(media_type=media_type, data=data, url=None if data else image.url))
            case wire.OpenAIFilePart(file=file) if file.file_data is not None:
                media_type, data = data_url(file.file_data)
                data = data or file.file_data
                blocks.append(DocumentBlock(media_type=media_type, data=data, title=file.filename))
            case wire.OpenAIFilePart():
                notes.add("file by file_id")
            case OtherKind(type=kind):
                notes.add(f"content part {kind}")
    return tuple(blocks)


def data_url(url: str) -> tuple[str | None, str | None]:
    """(media type, base64 payload) of a `data:<type>;base64,<payload>` URL, else (None, None)."""
    header, comma, payload = url.partition(",")
    if not (header.startswith("data:") and header.endswith(";base64") and comma):
        return None, None
    return header[5:-7] or None, payload


# --- the internal request, translated ----------------------------------------------------------------
def to_openai(
    request: NormalizedRequest,
    *,
    model: str | None = None,
    max_tokens_field: MaxTokensField = "max_completion_tokens",
) -> Translation:
    """An OpenAI chat completions body (OpenAI, vLLM, Ollama, LiteLLM's proxy, ...)."""
    dropped = list(request.untranslated)
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for message in request.messages:
        messages += _body_messages(message, dropped)
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
    copy_set(request, body, temperature="temperature", top_p="top_p")
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


def _body_messages(message: Message, dropped: list[str]) -> list[dict[str, Any]]:
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
            part = _body_part(block, dropped)
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


def _body_part(block: TextBlock | ImageBlock | DocumentBlock, dropped: list[str]) -> dict[str, Any] | None:
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


# --- an arm's call, same API ---------------------------------------------------------------------------
_PARAMS = {"temperature": "temperature", "top_p": "top_p", "stop_sequences": "stop",
           "reasoning_effort": "reasoning_effort"}  # fmt: skip


def with_arm(
    body: Mapping[str, Any], *, model: str, params: Mapping[str, Any], system: str | None
) -> ArmBody:
    """The captured body as an arm sends it: its model, parameters and system prompt (replacing every
    system or developer message); streaming is the provider's choice. Parameters the API lacks are noted."""
    raw = copy.deepcopy(dict(body))
    raw["model"] = model
    raw.pop("stream", None)
    raw.pop("stream_options", None)
    notes: list[str] = []
    for name, value in params.items():
        if name == "max_output_tokens":
            raw.pop("max_tokens", None)
            raw["max_completion_tokens"] = value
        elif name in _PARAMS:
            raw[_PARAMS[name]] = value
        else:
            notes.append(f"param {name}: not sent to chat completions")
    if system is not None:
        kept = [m for m in raw.get("messages", []) if m.get("role") not in ("system", "developer")]
        raw["messages"] = [{"role": "system", "content": system}, *kept]
    cap = raw.get("max_completion_tokens") or raw.get("max_tokens")
    if cap is None:
        raw["max_completion_tokens"] = cap = DEFAULT_MAX_TOKENS
        notes.append(f"max_tokens missing: set to {DEFAULT_MAX_TOKENS}")
    return ArmBody(raw, int(cap), tuple(notes))


# --- usage and stop reasons ----------------------------------------------------------------------------
def usage_from_openai(usage: Mapping[str, Any]) -> Usage:
    """Usage of an OpenAI chat completion.

    `prompt_tokens` includes cached tokens (and cache writes, reported by newer models as
    `cache_write_tokens`): uncached input = prompt_tokens - cached_tokens - cache_write_tokens.
    `completion_tokens` includes reasoning tokens, so `reasoning_tokens` is a breakdown of `output_tokens`.
    """
    return openai_usage(usage, input_field="prompt_tokens", output_field="completion_tokens")


# Stop reasons in Anthropic's words, whichever API answered (docs/providers.md).
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish_reason: str) -> str:
    """A `finish_reason` in Anthropic's words (`stop` -> `end_turn`, ...); an unknown one as given."""
    return _STOP_REASONS.get(finish_reason, finish_reason)
