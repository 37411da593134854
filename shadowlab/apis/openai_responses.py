"""OpenAI Responses API (`api: openai.responses`): a body normalised to the internal request, the internal
request translated to a body, usage and stop reasons parsed, an arm applied to a body.

The request models are in `shadowlab.apis.openai_responses_wire`; the registry in `shadowlab.apis`. State the
API keeps on its side (`previous_response_id`, `conversation`, `item_reference` items) is not in the capture:
normalisation records it as untranslated rather than guessing the earlier turns.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel

import shadowlab.apis.openai_responses_wire as wire
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
from shadowlab.apis.openai_chat import data_url
from shadowlab.apis.openai_chat_wire import parse_tool_arguments
from shadowlab.apis.openai_usage import openai_usage
from shadowlab.apis.wire import OtherKind
from shadowlab.usage import Usage

__all__ = ["normalize", "stop_reason", "to_responses", "usage_from_responses", "with_arm"]

# --- the body, normalised -------------------------------------------------------------------------------
# fmt: off
_HANDLED = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens",
    "temperature", "top_p", "reasoning", "previous_response_id", "conversation", "text", "store", "stream",
    "stream_options", "metadata", "user", "safety_identifier", "prompt_cache_key", "service_tier", "include",
    "background",
})
# fmt: on
_STATE = "the earlier turns are kept by the API, not in the capture"
_CHOICES: dict[str, Literal["auto", "any", "none"]] = {"auto": "auto", "required": "any", "none": "none"}


def normalize(req: wire.OpenAIResponsesRequest) -> NormalizedRequest:
    """The internal request of a validated Responses body."""
    notes = Notes()
    for field in ("previous_response_id", "conversation"):
        if getattr(req, field, None) is not None:
            notes.add(f"{field} ({_STATE})")
    items: list[Any] = req.input if isinstance(req.input, list) else [_user_text(req.input)]
    system, messages = _turns(items, notes)
    if req.instructions:
        system.insert(0, req.instructions)
    effort = None
    if req.reasoning is not None:
        notes.extras(req.reasoning, "reasoning")
        effort = req.reasoning.effort
        if req.reasoning.summary is not None:
            notes.add("reasoning.summary")
    _note_text_options(req.text, notes)
    notes.unmapped(req, _HANDLED)
    return NormalizedRequest(
        source_api="openai.responses",
        model=req.model,
        system=join_texts(system) if system else None,
        messages=tuple(messages),
        tools=tuple(_tools(req.tools or (), notes)),
        tool_choice=_tool_choice(req.tool_choice, notes),
        parallel_tool_calls=req.parallel_tool_calls,
        temperature=req.temperature,
        top_p=req.top_p,
        max_output_tokens=req.max_output_tokens,
        reasoning_effort=effort,
        untranslated=notes.result(),
    )


def _user_text(text: str) -> wire.ResponsesMessage:
    return wire.ResponsesMessage(role="user", content=text)


def _note_text_options(text: Mapping[str, Any] | None, notes: Notes) -> None:
    """`text.format` other than plain text (structured output) and `text.verbosity` have no internal place."""
    for key, value in (text or {}).items():
        kind = value.get("type") if key == "format" and isinstance(value, Mapping) else None
        if key == "format" and kind == "text":
            continue
        notes.add(f"text.format {kind}" if kind else f"text.{key}")


def _turns(items: Iterable[Any], notes: Notes) -> tuple[list[str], list[Message]]:
    """System texts (system and developer messages, wherever they stand) and the turns: function calls join
    the assistant turn before them, function outputs one user turn of tool results (as Anthropic needs)."""
    system: list[str] = []
    messages: list[Message] = []
    for item in items:
        if not isinstance(item, wire.ResponsesReasoningItem):  # dropped whole, noted once below
            notes.extras(item, f"{item.type or 'message'} item")
        if isinstance(item, wire.ResponsesMessage) and item.role in ("system", "developer"):
            if messages:
                notes.add("system message moved to the start")
            blocks = _content(item.content, notes)
            system.append(join_texts(b.text for b in blocks if isinstance(b, TextBlock)))
            if not all(isinstance(b, TextBlock) for b in blocks):
                notes.add("non-text system content")
        elif isinstance(item, wire.ResponsesMessage):
            messages.append(Message(role=item.role, content=_content(item.content, notes)))
        elif isinstance(item, wire.ResponsesFunctionCall):
            call = ToolUseBlock(id=item.call_id, name=item.name, input=parse_tool_arguments(item.arguments))
            _join(messages, "assistant", call, lambda blocks: True)
        elif isinstance(item, wire.ResponsesFunctionCallOutput):
            parts = result_blocks(_content(item.output, notes))
            result = ToolResultBlock(tool_use_id=item.call_id, content=parts)
            _join(messages, "user", result, _all_results)
        elif isinstance(item, wire.ResponsesReasoningItem):
            notes.add("reasoning item (only the API that made it can read it)")
        elif item.type == "item_reference":
            notes.add(f"item_reference ({_STATE})")
        else:
            notes.add(f"input item {item.type}")
    return system, messages


def _all_results(blocks: tuple[Block, ...]) -> bool:
    return all(isinstance(b, ToolResultBlock) for b in blocks)


def _join(messages: list[Message], role: Literal["user", "assistant"], block: Block, fits: Any) -> None:
    """Add `block` to the last turn when it has `role` and `fits(its blocks)`, else start a turn."""
    if messages and messages[-1].role == role and fits(messages[-1].content):
        messages[-1] = Message(role=role, content=(*messages[-1].content, block))
    else:
        messages.append(Message(role=role, content=(block,)))


def _tools(wire_tools: Iterable[Any], notes: Notes) -> list[ToolSpec]:
    tools: list[ToolSpec] = []
    for tool in wire_tools:
        if isinstance(tool, wire.ResponsesFunctionTool):
            notes.extras(tool, "function")
            if tool.strict:
                notes.add("function.strict")
            tools.append(
                ToolSpec(name=tool.name, description=tool.description, input_schema=tool.parameters or {})
            )
        else:
            notes.add(f"tool {tool.type}")
    return tools


def _tool_choice(choice: str | BaseModel | None, notes: Notes) -> ToolChoice | None:
    if isinstance(choice, str):
        return ToolChoice(type=_CHOICES[choice])
    if isinstance(choice, wire.ResponsesNamedToolChoice):
        return ToolChoice(type="tool", name=choice.name)
    if isinstance(choice, OtherKind):
        notes.add(f"tool_choice {choice.type}")
    return None


def _content(content: str | list[Any], notes: Notes) -> tuple[Block, ...]:
    if isinstance(content, str):
        return (TextBlock(text=content),)
    blocks = (_block(part, notes) for part in content)
    return tuple(block for block in blocks if block is not None)


def _block(part: BaseModel, notes: Notes) -> Block | None:
    notes.extras(part, f"{getattr(part, 'type', '')} part")
    match part:
        case wire.ResponsesText(text=text) | wire.ResponsesOutputText(text=text):
            return TextBlock(text=text)
        case wire.ResponsesRefusal(refusal=text):
            return TextBlock(text=text)
        case wire.ResponsesInputImage(image_url=str(url), detail=detail):
            if detail not in (None, "auto"):
                notes.add(f"image detail={detail}")
            media_type, data = data_url(url)
            return ImageBlock(media_type=media_type, data=data, url=None if data else url)
        case wire.ResponsesInputFile(file_data=str(file_data), filename=filename):
            media_type, data = data_url(file_data)
            return DocumentBlock(media_type=media_type, data=data or file_data, title=filename)
        case wire.ResponsesInputFile(file_url=str(url), filename=filename):
            return DocumentBlock(url=url, title=filename)
        case wire.ResponsesInputImage() | wire.ResponsesInputFile():
            notes.add(f"{part.type} by file_id")
        case OtherKind(type=kind):
            notes.add(f"content part {kind}")
    return None


# --- the internal request, translated ----------------------------------------------------------------
def to_responses(request: NormalizedRequest, *, model: str | None = None) -> Translation:
    """A Responses API body (`instructions` from the system prompt, the turns as input items)."""
    dropped = list(request.untranslated)
    body: dict[str, Any] = {"model": model or request.model}
    if request.system:
        body["instructions"] = request.system
    body["input"] = [item for message in request.messages for item in _items(message, dropped)]
    copy_set(request, body, max_output_tokens="max_output_tokens")
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "name": t.name,
                **({"description": t.description} if t.description else {}),
                "parameters": t.input_schema,
            }
            for t in request.tools
        ]
    choice = request.tool_choice
    if choice is not None:
        body["tool_choice"] = (
            {"type": "function", "name": choice.name}
            if choice.type == "tool"
            else {"auto": "auto", "any": "required", "none": "none"}[choice.type]
        )
    if request.parallel_tool_calls is not None and request.tools:
        body["parallel_tool_calls"] = request.parallel_tool_calls
    copy_set(request, body, temperature="temperature", top_p="top_p")
    if request.top_k is not None:
        dropped.append(f"top_k={request.top_k}")
    if request.stop_sequences:
        dropped.append(f"stop sequences ({len(request.stop_sequences)}): the Responses API has none")
    if request.thinking_budget_tokens is not None:
        dropped.append(f"thinking (budget {request.thinking_budget_tokens} tokens)")
    if request.reasoning_effort is not None:
        body["reasoning"] = {"effort": request.reasoning_effort}
    return Translation(body, tuple(dropped))


def _items(message: Message, dropped: list[str]) -> list[dict[str, Any]]:
    """One turn as input items: tool results first (user side), the message, then function calls."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in message.content:
        if isinstance(block, ToolResultBlock):
            output = _result_output(block, dropped)
            results.append({"type": "function_call_output", "call_id": block.tool_use_id, "output": output})
        elif isinstance(block, ToolUseBlock):
            call = {"type": "function_call", "call_id": block.id, "name": block.name}
            calls.append({**call, "arguments": json.dumps(block.input)})
        elif isinstance(block, ThinkingBlock):
            dropped.append("thinking block")
        elif message.role == "assistant":
            if isinstance(block, TextBlock):
                parts.append({"type": "output_text", "text": block.text})
            else:
                dropped.append("non-text content in an assistant turn")
        elif (part := _input_part(block, dropped)) is not None:
            parts.append(part)
    if parts:
        kind = {"type": "message"} if message.role == "assistant" else {}
        results.append({**kind, "role": message.role, "content": parts})
    return results + calls


def _result_output(block: ToolResultBlock, dropped: list[str]) -> str | list[dict[str, Any]]:
    if block.is_error:
        dropped.append("tool_result is_error flag")
    if all(isinstance(part, TextBlock) for part in block.content):
        return "\n\n".join(part.text for part in block.content if isinstance(part, TextBlock))
    return [p for p in (_input_part(part, dropped) for part in block.content) if p is not None]


def _input_part(block: TextBlock | ImageBlock | DocumentBlock, dropped: list[str]) -> dict[str, Any] | None:
    if isinstance(block, TextBlock):
        return {"type": "input_text", "text": block.text}
    if isinstance(block, ImageBlock):
        url = f"data:{block.media_type};base64,{block.data}" if block.data is not None else block.url
        if url is None:
            dropped.append("image without data or url")
            return None
        return {"type": "input_image", "image_url": url}
    title = {"filename": block.title} if block.title else {}
    if block.data is not None:
        data = f"data:{block.media_type or 'application/pdf'};base64,{block.data}"
        return {"type": "input_file", "file_data": data, **title}
    if block.url is not None:
        return {"type": "input_file", "file_url": block.url, **title}
    if block.text is not None:
        return {"type": "input_text", "text": block.text}
    dropped.append("document without data, url or text")
    return None


# --- an arm's call, same API ---------------------------------------------------------------------------
_PARAMS = {"temperature": "temperature", "top_p": "top_p", "max_output_tokens": "max_output_tokens"}


def with_arm(
    body: Mapping[str, Any], *, model: str, params: Mapping[str, Any], system: str | None
) -> ArmBody:
    """The captured body as an arm sends it: its model, parameters and `instructions` (system and developer
    input messages removed then); streaming is the provider's choice. Parameters the API lacks are noted."""
    raw = copy.deepcopy(dict(body))
    raw["model"] = model
    raw.pop("stream", None)
    raw.pop("stream_options", None)
    notes: list[str] = []
    for name, value in params.items():
        if name == "reasoning_effort":
            raw["reasoning"] = {**(raw.get("reasoning") or {}), "effort": value}
        elif name in _PARAMS:
            raw[_PARAMS[name]] = value
        else:
            notes.append(f"param {name}: not sent to the Responses API")
    if system is not None:
        raw["instructions"] = system
        if isinstance(raw.get("input"), list):
            raw["input"] = [i for i in raw["input"] if i.get("role") not in ("system", "developer")]
    if raw.get("previous_response_id") is not None:
        notes.append("previous_response_id sent as captured: the arm's provider must hold that state")
    if raw.get("max_output_tokens") is None:
        raw["max_output_tokens"] = DEFAULT_MAX_TOKENS
        notes.append(f"max_output_tokens missing: set to {DEFAULT_MAX_TOKENS}")
    return ArmBody(raw, int(raw["max_output_tokens"]), tuple(notes))


# --- usage and stop reasons ----------------------------------------------------------------------------
def usage_from_responses(usage: Mapping[str, Any]) -> Usage:
    """Usage of a response: `input_tokens` includes `input_tokens_details.cached_tokens` (and cache writes),
    `output_tokens` includes `output_tokens_details.reasoning_tokens` (a breakdown, never added)."""
    return openai_usage(usage, input_field="input_tokens", output_field="output_tokens")


_INCOMPLETE = {"max_output_tokens": "max_tokens", "content_filter": "refusal"}


def stop_reason(status: str | None, incomplete_reason: str | None, called_tools: bool) -> str | None:
    """A response's end in Anthropic's words: `completed` -> `end_turn` (`tool_use` when it called a
    function), `incomplete` -> its reason (`max_output_tokens` -> `max_tokens`, ...); others as given."""
    if status == "completed":
        return "tool_use" if called_tools else "end_turn"
    if status == "incomplete" and incomplete_reason is not None:
        return _INCOMPLETE.get(incomplete_reason, incomplete_reason)
    return status
