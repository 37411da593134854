"""OpenAI chat completions request bodies (POST /v1/chat/completions) as pydantic models: what
`shadowlab.apis.openai_chat` normalises, and what a capture of `api: openai.chat` is validated against.

Strict types, unknown fields kept (see `shadowlab.apis.wire`); types not modelled validate as `OtherKind`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Tag, field_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from shadowlab.apis.wire import OtherKind, StrOrList, WireModel, WireRequest, by_type, tag_of, tagged, type_of

# fmt: off
__all__ = [
    "OpenAIAssistantMessage", "OpenAIChatRequest", "OpenAIContent", "OpenAIFile", "OpenAIFilePart",
    "OpenAIFunctionCall", "OpenAIFunctionDef", "OpenAIFunctionTool", "OpenAIImagePart", "OpenAIImageUrl",
    "OpenAINamedToolChoice", "OpenAISystemMessage", "OpenAITextPart", "OpenAIToolCall", "OpenAIToolMessage",
    "OpenAIUserMessage", "parse_tool_arguments",
]
# fmt: on

_T = TypeVar("_T")


class OpenAITextPart(WireModel):
    type: Literal["text"]
    text: str


class OpenAIImageUrl(WireModel):
    url: str
    detail: str | None = None


class OpenAIImagePart(WireModel):
    type: Literal["image_url"]
    image_url: OpenAIImageUrl


class OpenAIFile(WireModel):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class OpenAIFilePart(WireModel):
    type: Literal["file"]
    file: OpenAIFile


WireModelAIPart = Annotated[
    Annotated[OpenAITextPart, Tag("~text")]
    | Annotated[OpenAIImagePart, Tag("~image_url")]
    | Annotated[OpenAIFilePart, Tag("~file")]
    | Annotated[OtherKind, Tag("~other")],
    by_type("a content part object", "text", "image_url", "file"),
]
OpenAIContent = StrOrList[WireModelAIPart]


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


class OpenAIFunctionCall(WireModel):
    name: str
    arguments: str

    @field_validator("arguments")
    @classmethod
    def _json_object(cls, value: str) -> str:
        parse_tool_arguments(value)  # refused at ingest, so the replayer never meets it
        return value


class OpenAIToolCall(WireModel):
    type: Literal["function"]
    id: str
    function: OpenAIFunctionCall


class OpenAISystemMessage(WireModel):
    role: Literal["system", "developer"]
    content: OpenAIContent
    name: str | None = None


class OpenAIUserMessage(WireModel):
    role: Literal["user"]
    content: OpenAIContent
    name: str | None = None


_FunctionOr = Annotated[  # a tool or tool call: "function", or another type kept as given
    Annotated[_T, Tag("~function")] | Annotated[OtherKind, Tag("~other")],
    by_type("an object with a type", "function"),
]


class OpenAIAssistantMessage(WireModel):
    role: Literal["assistant"]
    content: OpenAIContent | None = None
    tool_calls: list[_FunctionOr[OpenAIToolCall]] | None = None
    name: str | None = None


class OpenAIToolMessage(WireModel):
    role: Literal["tool"]
    tool_call_id: str
    content: OpenAIContent


class _UnknownRole(WireModel):  # never validates: reports an unknown role at `messages[i].role`
    role: Literal["system", "developer", "user", "assistant", "tool"]


_ROLES = frozenset({"system", "user", "assistant", "tool"})  # "developer" is tagged as "system"


def _role(value: Any) -> Any:
    role = value.get("role") if isinstance(value, dict) else getattr(value, "role", None)
    return "system" if role == "developer" else role


class OpenAIFunctionDef(WireModel):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class OpenAIFunctionTool(WireModel):
    type: Literal["function"]
    function: OpenAIFunctionDef


class OpenAINamedToolChoice(OpenAIFunctionTool):
    """`{"type": "function", "function": {"name": ...}}`: the model must call that function."""


def _tool_choice_tag(value: Any) -> str | None:
    return "~mode" if isinstance(value, str) else tag_of(type_of, frozenset({"function"}), "~other")(value)


WireModelAIMessage = Annotated[
    Annotated[OpenAISystemMessage, Tag("~system")]
    | Annotated[OpenAIUserMessage, Tag("~user")]
    | Annotated[OpenAIAssistantMessage, Tag("~assistant")]
    | Annotated[OpenAIToolMessage, Tag("~tool")]
    | Annotated[SkipJsonSchema[_UnknownRole], Tag("~unknown")],
    tagged("a message object", tag_of(_role, _ROLES, "~unknown")),
]
WireModelAIToolChoice = Annotated[
    Annotated[Literal["auto", "none", "required"], Tag("~mode")]
    | Annotated[OpenAINamedToolChoice, Tag("~function")]
    | Annotated[OtherKind, Tag("~other")],
    tagged("a tool_choice string or object", _tool_choice_tag),
]


class OpenAIChatRequest(WireRequest):
    """OpenAI chat completions request body (POST /v1/chat/completions); unknown fields are kept."""

    messages: list[WireModelAIMessage]
    tools: list[_FunctionOr[OpenAIFunctionTool]] | None = None
    tool_choice: WireModelAIToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: StrOrList[str] | None = None
    reasoning_effort: str | None = None
    n: int | None = None
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
