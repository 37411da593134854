"""Anthropic Messages (`api: anthropic.messages`): a body normalised to the internal request, the internal
request translated to a body, usage parsed (of a message or folded from a stream), an arm applied to a body.

The request models are in `shadowlab.apis.anthropic_wire`; the registry in `shadowlab.apis`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

import shadowlab.apis.anthropic_wire as wire
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
from shadowlab.apis.wire import OtherKind
from shadowlab.usage import Usage, UsageError, token_count

# fmt: off
__all__ = [
    "AnthropicStreamUsage", "normalize", "to_anthropic", "usage_from_anthropic",
    "usage_from_anthropic_stream", "with_arm",
]
# fmt: on


# --- the body, normalised -------------------------------------------------------------------------------
# fmt: off
_HANDLED = frozenset({
    "model", "max_tokens", "messages", "system", "tools", "tool_choice", "temperature", "top_p", "top_k",
    "stop_sequences", "thinking", "metadata", "stream",
})
# fmt: on


def normalize(req: wire.AnthropicMessagesRequest) -> NormalizedRequest:
    """The internal request of a validated Messages body."""
    notes = Notes()
    system = req.system
    if isinstance(system, list):
        for block in system:
            notes.extras(block, "system block")
        system = join_texts(block.text for block in system)
    messages = tuple(Message(role=m.role, content=_content(m.content, notes)) for m in req.messages)
    tools: list[ToolSpec] = []
    for tool in req.tools or ():
        if isinstance(tool, wire.AnthropicTool):
            notes.extras(tool, "tool")
            tools.append(
                ToolSpec(name=tool.name, description=tool.description, input_schema=tool.input_schema)
            )
        else:
            notes.add(f"server tool {tool.type}")
    choice, parallel, tool_choice = req.tool_choice, None, None
    if choice is not None:
        name = choice.name if isinstance(choice, wire.AnthropicToolChoiceTool) else None
        tool_choice = ToolChoice(type=choice.type, name=name)
        if choice.disable_parallel_tool_use is not None:
            parallel = not choice.disable_parallel_tool_use
    budget = None
    if req.thinking is not None and req.thinking.type == "enabled":
        budget = req.thinking.budget_tokens
    elif req.thinking is not None and req.thinking.type != "disabled":
        notes.add(f"thinking.type={req.thinking.type}")
    notes.unmapped(req, _HANDLED)
    return NormalizedRequest(
        source_api="anthropic.messages",
        model=req.model,
        system=system,
        messages=messages,
        tools=tuple(tools),
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        stop_sequences=tuple(req.stop_sequences or ()),
        max_output_tokens=req.max_tokens,
        thinking_budget_tokens=budget,
        untranslated=notes.result(),
    )


def _content(content: str | list[Any], notes: Notes) -> tuple[Block, ...]:
    if isinstance(content, str):
        return (TextBlock(text=content),)
    converted = (_block(block, notes) for block in content)
    return tuple(block for block in converted if block is not None)


def _block(block: BaseModel, notes: Notes) -> Block | None:
    notes.extras(block, f"{getattr(block, 'type', '')} block")
    match block:
        case wire.AnthropicTextBlock(text=text):
            return TextBlock(text=text)
        case wire.AnthropicImageBlock() | wire.AnthropicDocumentBlock():
            return _media(block, notes)
        case wire.AnthropicToolUseBlock(id=id_, name=name, input=input_):
            return ToolUseBlock(id=id_, name=name, input=input_)
        case wire.AnthropicToolResultBlock(tool_use_id=tool_use_id, content=content, is_error=is_error):
            parts = result_blocks(_content(content, notes)) if content != "" else ()
            return ToolResultBlock(tool_use_id=tool_use_id, content=parts, is_error=bool(is_error))
        case wire.AnthropicThinkingBlock(thinking=text, signature=signature):
            return ThinkingBlock(text=text, signature=signature)
        case wire.AnthropicRedactedThinkingBlock(data=data):
            return ThinkingBlock(text="", redacted_data=data)
        case OtherKind(type=kind):
            notes.add(f"content block {kind}")
    return None


_Media = wire.AnthropicImageBlock | wire.AnthropicDocumentBlock


def _media(block: _Media, notes: Notes) -> Block | None:
    source = block.source
    fields: dict[str, str | None]
    match source:
        case wire.AnthropicBase64Source(media_type=media_type, data=data):
            fields = {"media_type": media_type, "data": data}
        case wire.AnthropicUrlSource(url=url):
            fields = {"url": url}
        case wire.AnthropicTextSource(media_type=media_type, data=data) if block.type == "document":
            fields = {"media_type": media_type, "text": data}
        case _:
            notes.add(f"{block.type} source {source.type}")
            return None
    if isinstance(block, wire.AnthropicImageBlock):
        return ImageBlock(**fields)
    return DocumentBlock(title=block.title, **fields)


# --- the internal request, translated ----------------------------------------------------------------
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
        content = [b for b in (_body_block(block, dropped) for block in message.content) if b is not None]
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
    choice = _tool_choice_body(request)
    if choice is not None:
        body["tool_choice"] = choice
    if request.temperature is not None:
        body["temperature"] = min(request.temperature, 1.0)
        if request.temperature > 1.0:
            dropped.append(f"temperature {request.temperature:g} clamped to 1 (Anthropic's maximum)")
    copy_set(request, body, top_p="top_p", top_k="top_k")
    if request.stop_sequences:
        body["stop_sequences"] = list(request.stop_sequences)
    if request.thinking_budget_tokens is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": request.thinking_budget_tokens}
    if request.reasoning_effort is not None:
        dropped.append(f"reasoning_effort={request.reasoning_effort}")
    return Translation(body, tuple(dropped))


def _tool_choice_body(request: NormalizedRequest) -> dict[str, Any] | None:
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


def _body_block(block: Block, dropped: list[str]) -> dict[str, Any] | None:
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
        parts = [p for p in (_body_block(part, dropped) for part in block.content) if p is not None]
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


# --- an arm's call, same API ---------------------------------------------------------------------------
_PARAMS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
           "max_output_tokens": "max_tokens", "stop_sequences": "stop_sequences"}  # fmt: skip


def with_arm(
    body: Mapping[str, Any], *, model: str, params: Mapping[str, Any], system: str | None
) -> ArmBody:
    """The captured body as an arm sends it: its model, parameters and system prompt; streaming is the
    provider's choice. `thinking_budget_tokens` turns thinking on; parameters the API lacks are noted."""
    raw = copy.deepcopy(dict(body))
    raw["model"] = model
    raw.pop("stream", None)
    raw.pop("stream_options", None)
    notes: list[str] = []
    if raw.pop("betas", None):  # captured from `beta.messages`: the SDK sends them as a header, not a field
        notes.append("request.betas: the anthropic-beta header is not sent")
    for name, value in params.items():
        if name == "thinking_budget_tokens":
            raw["thinking"] = {"type": "enabled", "budget_tokens": value}
        elif name in _PARAMS:
            raw[_PARAMS[name]] = value
        else:
            notes.append(f"param {name}: not sent to the Messages API")
    if system is not None:
        raw["system"] = system
    raw.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    return ArmBody(raw, int(raw["max_tokens"]), tuple(notes))


# --- usage ---------------------------------------------------------------------------------------------
# Usage field -> where Anthropic reports it (a path into the usage object).
_ANTHROPIC_PATHS: dict[str, tuple[str, ...]] = {
    "input_tokens": ("input_tokens",),
    "cache_creation_input_tokens": ("cache_creation_input_tokens",),
    "cache_read_input_tokens": ("cache_read_input_tokens",),
    "output_tokens": ("output_tokens",),
    "reasoning_tokens": ("output_tokens_details", "thinking_tokens"),
    "cache_creation_1h_input_tokens": ("cache_creation", "ephemeral_1h_input_tokens"),
}


def usage_from_anthropic(usage: Mapping[str, Any]) -> Usage:
    """Usage of a (non-streamed) Anthropic message: `input_tokens` there is already the uncached part."""
    counts = _anthropic_counts(usage)
    for required in ("input_tokens", "output_tokens"):
        if required not in counts:
            raise UsageError(required, "a count (int >= 0)", "nothing")
    return Usage(**counts)


class AnthropicStreamUsage:
    """Folds Anthropic stream events into one Usage.

    `message_start.message.usage` carries the input-side counts; every `message_delta.usage` carries
    cumulative counts that replace the earlier ones (never add to them). A delta may also carry input or
    cache counts (newer API versions): those replace too when present, and are kept when absent or null.
    """

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._started = False

    def add(self, event: Mapping[str, Any]) -> None:
        """Take one SSE event (its JSON `data` as a dict); events without usage are ignored."""
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message")
            usage = message.get("usage") if isinstance(message, Mapping) else None
            self._counts.update(_anthropic_counts(usage, "message.usage"))
            self._started = True
        elif kind == "message_delta" and event.get("usage") is not None:
            self._counts.update(_anthropic_counts(event["usage"]))

    @property
    def usage(self) -> Usage:
        """The usage so far; output_tokens is the last cumulative count seen."""
        if not self._started:
            raise UsageError("message.usage", "a message_start event first", "no message_start")
        return Usage(**self._counts)


def usage_from_anthropic_stream(events: Iterable[Mapping[str, Any]]) -> Usage:
    """Usage of a whole Anthropic stream (see AnthropicStreamUsage)."""
    accumulator = AnthropicStreamUsage()
    for event in events:
        accumulator.add(event)
    return accumulator.usage


def _anthropic_counts(usage: Any, where: str = "") -> dict[str, int]:
    """The counts present (not null) in an Anthropic usage object."""
    if not isinstance(usage, Mapping):
        raise UsageError(where or "(usage)", "an object", type(usage).__name__)
    counts: dict[str, int] = {}
    for field, path in _ANTHROPIC_PATHS.items():
        node: Any = usage
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if node is not None:
            counts[field] = token_count(node, ".".join(path))
    return counts
