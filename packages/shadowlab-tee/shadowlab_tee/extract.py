"""Turn what an SDK call returned (a message or the events of a stream) into the capture's response fields.

These run on the sink's worker thread, never on the production call's path. SDK objects are read by
duck typing (attribute names of the Anthropic Messages, OpenAI chat completions and Responses APIs).

A deliberate copy of API knowledge that lives in `shadowlab.apis` (one module per API: stop reasons, tool
calls, the cumulative usage of an Anthropic stream): the tee runs inside production apps and may import only
the standard library and kafka-python (an import-linter contract), so it cannot import `shadowlab.apis`
(pydantic). Usage is kept here as the API reported it; `shadowlab.apis` parses it after ingest. A new API
shape needs its extraction here too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

# Deltas that count as the first token for TTFT (same definition as the replayer: text or thinking).
ANTHROPIC_TOKEN_DELTAS: Final = frozenset({"text_delta", "thinking_delta"})
_ANTHROPIC_TOOL_BLOCKS: Final = frozenset({"tool_use", "server_tool_use"})


def as_dict(model: Any) -> dict[str, Any] | None:
    """The raw API dict of an SDK model (only the fields the API sent)."""
    if model is None:
        return None
    if isinstance(model, dict):
        return model
    dump = getattr(model, "model_dump", None)
    if callable(dump):
        result: dict[str, Any] = dump(mode="json", exclude_unset=True, by_alias=True)
        return result
    return None


def _parse_tool_input(raw: str) -> Any:
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return {"_unparsed": raw}


def anthropic_message(message: Any) -> dict[str, Any]:
    """Response fields of a non-streamed `anthropic.types.Message`."""
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.content or ():
        kind = getattr(block, "type", None)
        if kind == "text":
            texts.append(block.text)
        elif kind in _ANTHROPIC_TOOL_BLOCKS:
            tool_calls.append({"id": block.id, "name": block.name, "input": block.input})
    return {
        "text": "".join(texts),
        "stop_reason": message.stop_reason,
        "usage": as_dict(message.usage),
        "tool_calls": tool_calls,
    }


def anthropic_events(events: Sequence[Any]) -> dict[str, Any]:
    """Response fields accumulated from the raw events of an Anthropic stream.

    Usage: `message_start` gives the input-side counts; each `message_delta.usage` holds cumulative
    counts that replace earlier values (never added); fields it omits keep their earlier value.
    """
    usage: dict[str, Any] | None = None
    stop_reason: str | None = None
    blocks: dict[int, dict[str, Any]] = {}
    for event in events:
        kind = event.type
        if kind == "content_block_delta":
            block = blocks.get(event.index)
            delta = event.delta
            if block is None:
                continue
            if delta.type == "text_delta":
                block["text"].append(delta.text)
            elif delta.type == "input_json_delta":
                block["json"].append(delta.partial_json)
        elif kind == "content_block_start":
            content = event.content_block
            blocks[event.index] = {"block": content, "text": [getattr(content, "text", "") or ""], "json": []}
        elif kind == "message_start":
            usage = dict(as_dict(event.message.usage) or {})
        elif kind == "message_delta":
            stop_reason = event.delta.stop_reason
            delta_usage = as_dict(getattr(event, "usage", None)) or {}
            usage = (usage or {}) | {key: value for key, value in delta_usage.items() if value is not None}
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for index in sorted(blocks):
        state = blocks[index]
        block = state["block"]
        if block.type == "text":
            texts.append("".join(state["text"]))
        elif block.type in _ANTHROPIC_TOOL_BLOCKS:
            streamed = "".join(state["json"])
            tool_input = _parse_tool_input(streamed) if streamed else (getattr(block, "input", None) or {})
            tool_calls.append({"id": block.id, "name": block.name, "input": tool_input})
    return {"text": "".join(texts), "stop_reason": stop_reason, "usage": usage, "tool_calls": tool_calls}


def openai_completion(completion: Any) -> dict[str, Any]:
    """Response fields of a non-streamed `openai.types.chat.ChatCompletion` (first choice)."""
    choices = completion.choices or ()
    text: str | None = None
    stop_reason: str | None = None
    tool_calls: list[dict[str, Any]] = []
    if choices:
        choice = choices[0]
        stop_reason = choice.finish_reason
        message = choice.message
        text = message.content or ""
        for call in message.tool_calls or ():
            function = getattr(call, "function", None)
            if function is not None:
                tool_calls.append(
                    {"id": call.id, "name": function.name, "input": _parse_tool_input(function.arguments)}
                )
    return {
        "text": text,
        "stop_reason": stop_reason,
        # A LiteLLM `ModelResponse` built without usage has no `usage` attribute at all (not None).
        "usage": as_dict(getattr(completion, "usage", None)),
        "tool_calls": tool_calls,
    }


def openai_chunks(chunks: Sequence[Any]) -> dict[str, Any]:
    """Response fields accumulated from `ChatCompletionChunk`s (first choice; usage from the usage chunk)."""
    texts: list[str] = []
    stop_reason: str | None = None
    usage: dict[str, Any] | None = None
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        if chunk.usage is not None:
            usage = as_dict(chunk.usage)
        for choice in chunk.choices or ():
            if choice.index != 0:
                continue
            if choice.finish_reason is not None:
                stop_reason = choice.finish_reason
            delta = choice.delta
            if delta is None:
                continue
            if delta.content:
                texts.append(delta.content)
            for part in delta.tool_calls or ():
                call = calls.setdefault(part.index, {"id": None, "name": None, "args": []})
                if part.id:
                    call["id"] = part.id
                function = part.function
                if function is not None:
                    if function.name:
                        call["name"] = function.name
                    if function.arguments:
                        call["args"].append(function.arguments)
    tool_calls = [
        {"id": call["id"], "name": call["name"], "input": _parse_tool_input("".join(call["args"]))}
        for _, call in sorted(calls.items())
    ]
    return {"text": "".join(texts), "stop_reason": stop_reason, "usage": usage, "tool_calls": tool_calls}


def anthropic_first_token(event: Any) -> bool:
    """True for the event that sets TTFT: the first text or thinking delta."""
    return event.type == "content_block_delta" and event.delta.type in ANTHROPIC_TOKEN_DELTAS


def anthropic_terminal(event: Any) -> bool:
    return bool(event.type == "message_stop")


def openai_first_token(chunk: Any) -> bool:
    choices = chunk.choices
    return bool(choices) and choices[0].delta is not None and bool(choices[0].delta.content)


def openai_terminal(chunk: Any) -> bool:
    choices = chunk.choices
    return bool(choices) and choices[0].finish_reason is not None


# ---- OpenAI Responses API ---------------------------------------------------------------------------
RESPONSES_TOKEN_DELTAS: Final = frozenset(
    {"response.output_text.delta", "response.reasoning_summary_text.delta", "response.reasoning_text.delta"}
)
RESPONSES_ENDS: Final = frozenset({"response.completed", "response.incomplete", "response.failed"})


def responses_result(response: Any) -> dict[str, Any]:
    """Response fields of an `openai.types.responses.Response`: `stop_reason` is its status, or the reason
    it is incomplete (`max_output_tokens`, `content_filter`)."""
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for item in response.output or ():
        if item.type == "message":
            texts += [part.text for part in item.content or () if part.type == "output_text"]
        elif item.type == "function_call":
            arguments = _parse_tool_input(item.arguments)
            tool_calls.append({"id": item.call_id, "name": item.name, "input": arguments})
    reason = getattr(getattr(response, "incomplete_details", None), "reason", None)
    status = response.status
    return {
        "text": "".join(texts),
        "stop_reason": reason if status == "incomplete" and reason else status,
        "usage": as_dict(response.usage),
        "tool_calls": tool_calls,
    }


def responses_events(events: Sequence[Any]) -> dict[str, Any]:
    """Response fields of a Responses stream: the last event's whole response when the stream got that far,
    else what its deltas and finished items carried (no usage: it comes only with the last event)."""
    last = events[-1] if events else None
    if last is not None and last.type in RESPONSES_ENDS:
        return responses_result(last.response)
    texts = [event.delta for event in events if event.type == "response.output_text.delta"]
    calls = [
        {"id": event.item.call_id, "name": event.item.name, "input": _parse_tool_input(event.item.arguments)}
        for event in events
        if event.type == "response.output_item.done" and event.item.type == "function_call"
    ]
    return {"text": "".join(texts), "stop_reason": None, "usage": None, "tool_calls": calls}


def responses_first_token(event: Any) -> bool:
    """True for the event that sets TTFT: the first output-text or reasoning delta."""
    return event.type in RESPONSES_TOKEN_DELTAS and bool(event.delta)


def responses_terminal(event: Any) -> bool:
    return event.type in RESPONSES_ENDS
