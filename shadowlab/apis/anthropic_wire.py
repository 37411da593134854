"""Anthropic Messages request bodies (POST /v1/messages) as pydantic models: what `shadowlab.apis.anthropic`
normalises, and what a capture of `api: anthropic.messages` is validated against.

Strict types, unknown fields kept (see `shadowlab.apis.wire`); types not modelled validate as `OtherKind`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Tag

from shadowlab.apis.wire import OtherKind, StrOrList, WireModel, WireRequest, by_type, tag_of, tagged, type_of

# fmt: off
__all__ = [
    "AnthropicBase64Source", "AnthropicDocumentBlock", "AnthropicImageBlock", "AnthropicMessage",
    "AnthropicMessagesRequest", "AnthropicRedactedThinkingBlock", "AnthropicTextBlock", "AnthropicTextSource",
    "AnthropicThinking", "AnthropicThinkingBlock", "AnthropicTool", "AnthropicToolChoiceMode",
    "AnthropicToolChoiceTool", "AnthropicToolResultBlock", "AnthropicToolUseBlock", "AnthropicUrlSource",
]
# fmt: on


class AnthropicTextBlock(WireModel):
    type: Literal["text"]
    text: str


class AnthropicBase64Source(WireModel):
    type: Literal["base64"]
    media_type: str
    data: str


class AnthropicUrlSource(WireModel):
    type: Literal["url"]
    url: str


class AnthropicTextSource(WireModel):
    type: Literal["text"]
    data: str
    media_type: str = "text/plain"


_Source = Annotated[
    Annotated[AnthropicBase64Source, Tag("~base64")]
    | Annotated[AnthropicUrlSource, Tag("~url")]
    | Annotated[AnthropicTextSource, Tag("~text")]
    | Annotated[OtherKind, Tag("~other")],
    by_type("a source object", "base64", "url", "text"),
]


class AnthropicImageBlock(WireModel):
    type: Literal["image"]
    source: _Source


class AnthropicDocumentBlock(WireModel):
    type: Literal["document"]
    source: _Source
    title: str | None = None


_ResultPart = Annotated[
    Annotated[AnthropicTextBlock, Tag("~text")]
    | Annotated[AnthropicImageBlock, Tag("~image")]
    | Annotated[AnthropicDocumentBlock, Tag("~document")]
    | Annotated[OtherKind, Tag("~other")],
    by_type("a content block object", "text", "image", "document"),
]


class AnthropicToolUseBlock(WireModel):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class AnthropicToolResultBlock(WireModel):
    type: Literal["tool_result"]
    tool_use_id: str
    content: StrOrList[_ResultPart] = ""
    is_error: bool | None = None


class AnthropicThinkingBlock(WireModel):
    type: Literal["thinking"]
    thinking: str
    signature: str | None = None


class AnthropicRedactedThinkingBlock(WireModel):
    type: Literal["redacted_thinking"]
    data: str


_AnthropicBlock = Annotated[
    Annotated[AnthropicTextBlock, Tag("~text")]
    | Annotated[AnthropicImageBlock, Tag("~image")]
    | Annotated[AnthropicDocumentBlock, Tag("~document")]
    | Annotated[AnthropicToolUseBlock, Tag("~tool_use")]
    | Annotated[AnthropicToolResultBlock, Tag("~tool_result")]
    | Annotated[AnthropicThinkingBlock, Tag("~thinking")]
    | Annotated[AnthropicRedactedThinkingBlock, Tag("~redacted_thinking")]
    | Annotated[OtherKind, Tag("~other")],
    by_type(
        "a content block object",
        "text",
        "image",
        "document",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
    ),
]


class AnthropicMessage(WireModel):
    role: Literal["user", "assistant"]
    content: StrOrList[_AnthropicBlock]


class AnthropicTool(WireModel):
    """A custom (client) tool. Server tools (web_search, bash, …) validate as `OtherKind`."""

    name: str
    input_schema: dict[str, Any]
    description: str | None = None
    type: Literal["custom"] | None = None


class AnthropicToolChoiceMode(WireModel):
    type: Literal["auto", "any", "none"]
    disable_parallel_tool_use: bool | None = None


class AnthropicToolChoiceTool(WireModel):
    type: Literal["tool"]
    name: str
    disable_parallel_tool_use: bool | None = None


class AnthropicThinking(WireModel):
    type: str
    budget_tokens: int | None = None


def _custom_tool(value: Any) -> str:
    return "custom" if type_of(value) in (None, "custom") else "server"


_AnthropicToolUnion = Annotated[
    Annotated[AnthropicTool, Tag("~custom")] | Annotated[OtherKind, Tag("~server")],
    tagged("a tool object", tag_of(_custom_tool, frozenset({"custom"}), "~server")),
]
_AnthropicToolChoice = Annotated[
    Annotated[AnthropicToolChoiceMode, Tag("~mode")] | Annotated[AnthropicToolChoiceTool, Tag("~tool")],
    by_type("a tool_choice object", "tool", other="~mode"),
]


class AnthropicMessagesRequest(WireRequest):
    """Anthropic Messages API request body (POST /v1/messages); unknown fields are kept."""

    max_tokens: int
    messages: list[AnthropicMessage]
    system: StrOrList[AnthropicTextBlock] | None = None
    tools: list[_AnthropicToolUnion] | None = None
    tool_choice: _AnthropicToolChoice | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    thinking: AnthropicThinking | None = None
    metadata: dict[str, Any] | None = None
    stream: bool | None = None
