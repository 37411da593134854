"""One internal request from either captured API shape (DESIGN §3); providers translate it to each arm's API.

Lossy, and says so: what has no place here (cache_control, server tools, audio, n>1, unknown fields, ...) is
counted in `untranslated`. Split system texts (blocks, several messages) are joined with a blank line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shadowlab import api_requests as wire
from shadowlab.capture import Api, Capture, validate_request_body

# fmt: off
__all__ = [
    "Block", "DocumentBlock", "ImageBlock", "Message", "NormalizedRequest", "ResultBlock", "TextBlock",
    "ThinkingBlock", "ToolChoice", "ToolResultBlock", "ToolSpec", "ToolUseBlock", "normalize_request",
    "normalize_request_body",
]
# fmt: on


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TextBlock(_Frozen):
    type: Literal["text"] = "text"
    text: str


class ImageBlock(_Frozen):
    """An image as base64 `data` with its `media_type`, or as a `url`."""

    type: Literal["image"] = "image"
    media_type: str | None = None
    data: str | None = None
    url: str | None = None


class DocumentBlock(_Frozen):
    """A document (PDF, text): base64 `data` with its `media_type`, a `url`, or plain `text`."""

    type: Literal["document"] = "document"
    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    text: str | None = None
    title: str | None = None


class ToolUseBlock(_Frozen):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


ResultBlock = Annotated[TextBlock | ImageBlock | DocumentBlock, Field(discriminator="type")]


class ToolResultBlock(_Frozen):
    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    content: tuple[ResultBlock, ...] = ()
    is_error: bool = False


class ThinkingBlock(_Frozen):
    """Reasoning the model showed; `signature` / `redacted_data` let Anthropic verify it when sent back."""

    type: Literal["thinking"] = "thinking"
    text: str
    signature: str | None = None
    redacted_data: str | None = None


Block = Annotated[
    TextBlock | ImageBlock | DocumentBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock,
    Field(discriminator="type"),
]


class Message(_Frozen):
    role: Literal["user", "assistant"]
    content: tuple[Block, ...]


class ToolSpec(_Frozen):
    name: str
    description: str | None = None
    input_schema: dict[str, Any]


class ToolChoice(_Frozen):
    """auto: model decides; any: must call some tool (OpenAI "required"); none; tool: must call `name`."""

    type: Literal["auto", "any", "none", "tool"]
    name: str | None = None


class NormalizedRequest(_Frozen):
    """The request independent of its API: OpenAI system/developer messages become `system`, tool messages
    user `ToolResultBlock`s, assistant tool calls `ToolUseBlock`s."""

    source_api: Api
    model: str
    system: str | None = None
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: tuple[str, ...] = ()
    max_output_tokens: int | None = None
    thinking_budget_tokens: int | None = None
    reasoning_effort: str | None = None
    untranslated: tuple[str, ...] = Field(default=(), description="What could not be carried over, counted.")


def normalize_request(capture: Capture) -> NormalizedRequest:
    """The normalised request of a validated capture."""
    return normalize_request_body(capture.api, capture.request)


def normalize_request_body(api: str, body: Mapping[str, Any] | wire.ApiRequest) -> NormalizedRequest:
    """Normalise a stored request body; CaptureError (paths `request.…`) when it does not fit its api."""
    request = validate_request_body(api, body)
    if isinstance(request, wire.AnthropicMessagesRequest):
        return _from_anthropic(request)
    return _from_openai(request)


class _Notes:
    """Counts what normalisation drops, for `untranslated`."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, what: str) -> None:
        self.counts[what] += 1

    def extras(self, obj: BaseModel, label: str) -> None:
        if isinstance(obj, wire.OtherKind):
            return  # dropped whole, noted by the caller
        for key, value in (obj.model_extra or {}).items():
            if value is not None:
                self.add("cache_control marker" if key == "cache_control" else f"{label}.{key}")

    def unmapped(self, request: BaseModel, handled: frozenset[str]) -> None:
        for name in sorted(request.model_fields_set | set(request.model_extra or {})):
            if name not in handled and getattr(request, name, None) is not None:
                self.add(f"request.{name}")

    def result(self) -> tuple[str, ...]:
        return tuple(what if n == 1 else f"{what} x{n}" for what, n in sorted(self.counts.items()))


# --- Anthropic Messages ---------------------------------------------------------------------------------
# fmt: off
_ANTHROPIC_HANDLED = frozenset({
    "model", "max_tokens", "messages", "system", "tools", "tool_choice", "temperature", "top_p", "top_k",
    "stop_sequences", "thinking", "metadata", "stream",
})
# fmt: on


def _from_anthropic(req: wire.AnthropicMessagesRequest) -> NormalizedRequest:
    notes = _Notes()
    system = req.system
    if isinstance(system, list):
        for block in system:
            notes.extras(block, "system block")
        system = _join(block.text for block in system)
    messages = tuple(Message(role=m.role, content=_anthropic_content(m.content, notes)) for m in req.messages)
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
    notes.unmapped(req, _ANTHROPIC_HANDLED)
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


def _anthropic_content(content: str | list[Any], notes: _Notes) -> tuple[Block, ...]:
    if isinstance(content, str):
        return (TextBlock(text=content),)
    converted = (_anthropic_block(block, notes) for block in content)
    return tuple(block for block in converted if block is not None)


def _anthropic_block(block: BaseModel, notes: _Notes) -> Block | None:
    notes.extras(block, f"{getattr(block, 'type', '')} block")
    match block:
        case wire.AnthropicTextBlock(text=text):
            return TextBlock(text=text)
        case wire.AnthropicImageBlock() | wire.AnthropicDocumentBlock():
            return _anthropic_media(block, notes)
        case wire.AnthropicToolUseBlock(id=id_, name=name, input=input_):
            return ToolUseBlock(id=id_, name=name, input=input_)
        case wire.AnthropicToolResultBlock(tool_use_id=tool_use_id, content=content, is_error=is_error):
            parts = _result_blocks(_anthropic_content(content, notes)) if content != "" else ()
            return ToolResultBlock(tool_use_id=tool_use_id, content=parts, is_error=bool(is_error))
        case wire.AnthropicThinkingBlock(thinking=text, signature=signature):
            return ThinkingBlock(text=text, signature=signature)
        case wire.AnthropicRedactedThinkingBlock(data=data):
            return ThinkingBlock(text="", redacted_data=data)
        case wire.OtherKind(type=kind):
            notes.add(f"content block {kind}")
    return None


_Media = wire.AnthropicImageBlock | wire.AnthropicDocumentBlock


def _anthropic_media(block: _Media, notes: _Notes) -> Block | None:
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


# --- OpenAI chat completions ----------------------------------------------------------------------------
# fmt: off
_OPENAI_HANDLED = frozenset({
    "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "max_tokens", "max_completion_tokens",
    "temperature", "top_p", "stop", "reasoning_effort", "n", "stream", "stream_options", "user", "store",
    "metadata",
})
# fmt: on
_CHOICES: dict[str, Literal["auto", "any", "none"]] = {"auto": "auto", "required": "any", "none": "none"}


def _from_openai(req: wire.OpenAIChatRequest) -> NormalizedRequest:
    notes = _Notes()
    system: list[str] = []
    messages: list[Message] = []
    for message in req.messages:
        notes.extras(message, f"{message.role} message")
        if getattr(message, "name", None) is not None:
            notes.add("message name")
        if isinstance(message, wire.OpenAISystemMessage):
            if messages:
                notes.add("system message moved to the start")
            blocks = _openai_content(message.content, notes)
            system.append(_join(b.text for b in blocks if isinstance(b, TextBlock)))
            if not all(isinstance(b, TextBlock) for b in blocks):
                notes.add("non-text system content")
        elif isinstance(message, wire.OpenAIToolMessage):
            parts = _result_blocks(_openai_content(message.content, notes))
            result = ToolResultBlock(tool_use_id=message.tool_call_id, content=parts)
            last = messages[-1].content if messages and messages[-1].role == "user" else ()
            if last and all(isinstance(b, ToolResultBlock) for b in last):
                messages[-1] = Message(
                    role="user", content=(*last, result)
                )  # one user turn, as Anthropic needs
            else:
                messages.append(Message(role="user", content=(result,)))
        elif isinstance(message, wire.OpenAIAssistantMessage):
            content = () if message.content is None else _openai_content(message.content, notes)
            calls = [_tool_use(call, notes) for call in message.tool_calls or ()]
            content += tuple(call for call in calls if call is not None)
            messages.append(Message(role="assistant", content=content))
        elif isinstance(message, wire.OpenAIUserMessage):
            messages.append(Message(role="user", content=_openai_content(message.content, notes)))
    tools: list[ToolSpec] = []
    for tool in req.tools or ():
        if isinstance(tool, wire.OpenAIFunctionTool):
            fn = tool.function
            notes.extras(fn, "function")
            tools.append(ToolSpec(name=fn.name, description=fn.description, input_schema=fn.parameters or {}))
        else:
            notes.add(f"tool {tool.type}")
    if req.n is not None and req.n > 1:
        notes.add(f"n={req.n} (one choice replayed)")
    notes.unmapped(req, _OPENAI_HANDLED)
    stop = req.stop
    return NormalizedRequest(
        source_api="openai.chat",
        model=req.model,
        system=_join(system) if system else None,
        messages=tuple(messages),
        tools=tuple(tools),
        tool_choice=_openai_choice(req.tool_choice, notes),
        parallel_tool_calls=req.parallel_tool_calls,
        temperature=req.temperature,
        top_p=req.top_p,
        stop_sequences=(stop,) if isinstance(stop, str) else tuple(stop or ()),
        max_output_tokens=req.max_tokens if req.max_completion_tokens is None else req.max_completion_tokens,
        reasoning_effort=req.reasoning_effort,
        untranslated=notes.result(),
    )


def _openai_choice(choice: str | BaseModel | None, notes: _Notes) -> ToolChoice | None:
    if isinstance(choice, str):
        return ToolChoice(type=_CHOICES[choice])
    if isinstance(choice, wire.OpenAINamedToolChoice):
        return ToolChoice(type="tool", name=choice.function.name)
    if isinstance(choice, wire.OtherKind):
        notes.add(f"tool_choice {choice.type}")
    return None


def _tool_use(call: wire.OpenAIToolCall | wire.OtherKind, notes: _Notes) -> ToolUseBlock | None:
    if isinstance(call, wire.OtherKind):
        notes.add(f"tool call {call.type}")
        return None
    fn = call.function
    return ToolUseBlock(id=call.id, name=fn.name, input=wire.parse_tool_arguments(fn.arguments))


def _result_blocks(blocks: tuple[Block, ...]) -> tuple[ResultBlock, ...]:
    return tuple(b for b in blocks if isinstance(b, TextBlock | ImageBlock | DocumentBlock))


def _openai_content(content: wire.OpenAIContent, notes: _Notes) -> tuple[Block, ...]:
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
                media_type, data = _data_url(image.url)
                blocks.append(ImageBlock(media_type=media_type, data=data, url=None if data else image.url))
            case wire.OpenAIFilePart(file=file) if file.file_data is not None:
                media_type, data = _data_url(file.file_data)
                data = data or file.file_data
                blocks.append(DocumentBlock(media_type=media_type, data=data, title=file.filename))
            case wire.OpenAIFilePart():
                notes.add("file by file_id")
            case wire.OtherKind(type=kind):
                notes.add(f"content part {kind}")
    return tuple(blocks)


def _data_url(url: str) -> tuple[str | None, str | None]:
    """(media type, base64 payload) of a `data:<type>;base64,<payload>` URL, else (None, None)."""
    header, comma, payload = url.partition(",")
    if not (header.startswith("data:") and header.endswith(";base64") and comma):
        return None, None
    return header[5:-7] or None, payload


def _join(texts: Iterable[str]) -> str:
    return "\n\n".join(texts)
