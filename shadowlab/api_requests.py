"""Request bodies of the two captured APIs (Anthropic Messages, OpenAI chat completions) as pydantic models.

Strict types, unknown fields kept. Unions are tagged by a callable: one error per bad block, not one per
member (tags start with "~"; error paths drop them). Types not modelled here validate as `OtherKind`, kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, field_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

# fmt: off
__all__ = [
    "AnthropicBase64Source", "AnthropicDocumentBlock", "AnthropicImageBlock", "AnthropicMessage",
    "AnthropicMessagesRequest", "AnthropicRedactedThinkingBlock", "AnthropicTextBlock", "AnthropicTextSource",
    "AnthropicThinking", "AnthropicThinkingBlock", "AnthropicTool", "AnthropicToolChoiceMode",
    "AnthropicToolChoiceTool", "AnthropicToolResultBlock", "AnthropicToolUseBlock", "AnthropicUrlSource",
    "ApiRequest", "OpenAIAssistantMessage", "OpenAIChatRequest", "OpenAIContent", "OpenAIFile",
    "OpenAIFilePart", "OpenAIFunctionCall", "OpenAIFunctionDef", "OpenAIFunctionTool", "OpenAIImagePart",
    "OpenAIImageUrl", "OpenAINamedToolChoice", "OpenAISystemMessage", "OpenAITextPart", "OpenAIToolCall",
    "OpenAIToolMessage", "OpenAIUserMessage", "OtherKind", "parse_tool_arguments",
]
# fmt: on


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, strict=True)


class OtherKind(_Open):
    """A block, source, part, tool or tool call of a type this version does not model; kept as given."""

    type: str


def _tag_of(read: Callable[[Any], Any], known: frozenset[str], other: str) -> Callable[[Any], str | None]:
    def tag(value: Any) -> str | None:
        if isinstance(value, OtherKind):
            return other
        if not isinstance(value, (dict, BaseModel)):
            return None
        kind = read(value)
        return f"~{kind}" if kind in known else other

    return tag


def _type_of(value: Any) -> Any:
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


def _str_or_list_tag(value: Any) -> str | None:
    return "~str" if isinstance(value, str) else "~list" if isinstance(value, list | tuple) else None


def _tagged(what: str, tag: Callable[[Any], str | None]) -> Discriminator:
    return Discriminator(tag, custom_error_type="wrong_type", custom_error_message=f"Input should be {what}")


_T = TypeVar("_T")
_StrOrList = Annotated[
    Annotated[str, Tag("~str")] | Annotated[list[_T], Tag("~list")],
    _tagged("a string or a list", _str_or_list_tag),
]


def _by_type(expected: str, *known: str, other: str = "~other") -> Discriminator:
    return _tagged(expected, _tag_of(_type_of, frozenset(known), other))


class AnthropicTextBlock(_Open):
    type: Literal["text"]
    text: str


class AnthropicBase64Source(_Open):
    type: Literal["base64"]
    media_type: str
    data: str


class AnthropicUrlSource(_Open):
    type: Literal["url"]
    url: str


class AnthropicTextSource(_Open):
    type: Literal["text"]
    data: str
    media_type: str = "text/plain"


_Source = Annotated[
    Annotated[AnthropicBase64Source, Tag("~base64")]
    | Annotated[AnthropicUrlSource, Tag("~url")]
    | Annotated[AnthropicTextSource, Tag("~text")]
    | Annotated[OtherKind, Tag("~other")],
    _by_type("a source object", "base64", "url", "text"),
]


class AnthropicImageBlock(_Open):
    type: Literal["image"]
    source: _Source


class AnthropicDocumentBlock(_Open):
    type: Literal["document"]
    source: _Source
    title: str | None = None


_ResultPart = Annotated[
    Annotated[AnthropicTextBlock, Tag("~text")]
    | Annotated[AnthropicImageBlock, Tag("~image")]
    | Annotated[AnthropicDocumentBlock, Tag("~document")]
    | Annotated[OtherKind, Tag("~other")],
    _by_type("a content block object", "text", "image", "document"),
]


class AnthropicToolUseBlock(_Open):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class AnthropicToolResultBlock(_Open):
    type: Literal["tool_result"]
    tool_use_id: str
    content: _StrOrList[_ResultPart] = ""
    is_error: bool | None = None


class AnthropicThinkingBlock(_Open):
    type: Literal["thinking"]
    thinking: str
    signature: str | None = None


class AnthropicRedactedThinkingBlock(_Open):
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
    _by_type(
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


class AnthropicMessage(_Open):
    role: Literal["user", "assistant"]
    content: _StrOrList[_AnthropicBlock]


class AnthropicTool(_Open):
    """A custom (client) tool. Server tools (web_search, bash, …) validate as `OtherKind`."""

    name: str
    input_schema: dict[str, Any]
    description: str | None = None
    type: Literal["custom"] | None = None


class AnthropicToolChoiceMode(_Open):
    type: Literal["auto", "any", "none"]
    disable_parallel_tool_use: bool | None = None


class AnthropicToolChoiceTool(_Open):
    type: Literal["tool"]
    name: str
    disable_parallel_tool_use: bool | None = None


class AnthropicThinking(_Open):
    type: str
    budget_tokens: int | None = None


def _custom_tool(value: Any) -> str:
    return "custom" if _type_of(value) in (None, "custom") else "server"


_AnthropicToolUnion = Annotated[
    Annotated[AnthropicTool, Tag("~custom")] | Annotated[OtherKind, Tag("~server")],
    _tagged("a tool object", _tag_of(_custom_tool, frozenset({"custom"}), "~server")),
]
_AnthropicToolChoice = Annotated[
    Annotated[AnthropicToolChoiceMode, Tag("~mode")] | Annotated[AnthropicToolChoiceTool, Tag("~tool")],
    _by_type("a tool_choice object", "tool", other="~mode"),
]


class AnthropicMessagesRequest(_Open):
    """Anthropic Messages API request body (POST /v1/messages); unknown fields are kept."""

    model: str
    max_tokens: int
    messages: list[AnthropicMessage]
    system: _StrOrList[AnthropicTextBlock] | None = None
    tools: list[_AnthropicToolUnion] | None = None
    tool_choice: _AnthropicToolChoice | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    thinking: AnthropicThinking | None = None
    metadata: dict[str, Any] | None = None
    stream: bool | None = None


class OpenAITextPart(_Open):
    type: Literal["text"]
    text: str


class OpenAIImageUrl(_Open):
    url: str
    detail: str | None = None


class OpenAIImagePart(_Open):
    type: Literal["image_url"]
    image_url: OpenAIImageUrl


class OpenAIFile(_Open):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class OpenAIFilePart(_Open):
    type: Literal["file"]
    file: OpenAIFile


_OpenAIPart = Annotated[
    Annotated[OpenAITextPart, Tag("~text")]
    | Annotated[OpenAIImagePart, Tag("~image_url")]
    | Annotated[OpenAIFilePart, Tag("~file")]
    | Annotated[OtherKind, Tag("~other")],
    _by_type("a content part object", "text", "image_url", "file"),
]
OpenAIContent = _StrOrList[_OpenAIPart]


def parse_tool_arguments(arguments: str) -> dict[str, Any]:
    """OpenAI `function.arguments` (a JSON string) as a dict; an empty string means no arguments."""
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except ValueError as exc:
        parsed = exc
    if not isinstance(parsed, dict):
        why = str(parsed) if isinstance(parsed, ValueError) else f"not an object: {type(parsed).__name__}"
        raise PydanticCustomError("invalid_value", "Input should be a JSON object string ({w})", {"w": why})
    return parsed


class OpenAIFunctionCall(_Open):
    name: str
    arguments: str

    @field_validator("arguments")
    @classmethod
    def _json_object(cls, value: str) -> str:
        parse_tool_arguments(value)  # refused at ingest, so the replayer never meets it
        return value


class OpenAIToolCall(_Open):
    type: Literal["function"]
    id: str
    function: OpenAIFunctionCall


class OpenAISystemMessage(_Open):
    role: Literal["system", "developer"]
    content: OpenAIContent
    name: str | None = None


class OpenAIUserMessage(_Open):
    role: Literal["user"]
    content: OpenAIContent
    name: str | None = None


_FunctionOr = Annotated[  # a tool or tool call: "function", or another type kept as given
    Annotated[_T, Tag("~function")] | Annotated[OtherKind, Tag("~other")],
    _by_type("an object with a type", "function"),
]


class OpenAIAssistantMessage(_Open):
    role: Literal["assistant"]
    content: OpenAIContent | None = None
    tool_calls: list[_FunctionOr[OpenAIToolCall]] | None = None
    name: str | None = None


class OpenAIToolMessage(_Open):
    role: Literal["tool"]
    tool_call_id: str
    content: OpenAIContent


class _UnknownRole(_Open):  # never validates: reports an unknown role at `messages[i].role`
    role: Literal["system", "developer", "user", "assistant", "tool"]


_ROLES = frozenset({"system", "user", "assistant", "tool"})  # "developer" is tagged as "system"


def _role(value: Any) -> Any:
    role = value.get("role") if isinstance(value, dict) else getattr(value, "role", None)
    return "system" if role == "developer" else role


class OpenAIFunctionDef(_Open):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class OpenAIFunctionTool(_Open):
    type: Literal["function"]
    function: OpenAIFunctionDef


class OpenAINamedToolChoice(OpenAIFunctionTool):
    """`{"type": "function", "function": {"name": ...}}`: the model must call that function."""


def _tool_choice_tag(value: Any) -> str | None:
    return "~mode" if isinstance(value, str) else _tag_of(_type_of, frozenset({"function"}), "~other")(value)


_OpenAIMessage = Annotated[
    Annotated[OpenAISystemMessage, Tag("~system")]
    | Annotated[OpenAIUserMessage, Tag("~user")]
    | Annotated[OpenAIAssistantMessage, Tag("~assistant")]
    | Annotated[OpenAIToolMessage, Tag("~tool")]
    | Annotated[SkipJsonSchema[_UnknownRole], Tag("~unknown")],
    _tagged("a message object", _tag_of(_role, _ROLES, "~unknown")),
]
_OpenAIToolChoice = Annotated[
    Annotated[Literal["auto", "none", "required"], Tag("~mode")]
    | Annotated[OpenAINamedToolChoice, Tag("~function")]
    | Annotated[OtherKind, Tag("~other")],
    _tagged("a tool_choice string or object", _tool_choice_tag),
]


class OpenAIChatRequest(_Open):
    """OpenAI chat completions request body (POST /v1/chat/completions); unknown fields are kept."""

    model: str
    messages: list[_OpenAIMessage]
    tools: list[_FunctionOr[OpenAIFunctionTool]] | None = None
    tool_choice: _OpenAIToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: _StrOrList[str] | None = None
    reasoning_effort: str | None = None
    n: int | None = None
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None


ApiRequest = AnthropicMessagesRequest | OpenAIChatRequest
