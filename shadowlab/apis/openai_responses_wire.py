"""OpenAI Responses API request bodies (POST /v1/responses) as pydantic models: what
`shadowlab.apis.openai_responses` normalises, and what a capture of `api: openai.responses` is validated
against.

Strict types, unknown fields kept (see `shadowlab.apis.wire`); item, part and tool types not modelled validate
as `OtherKind` and are kept. An input item without `type` is a message (the API's "easy input message").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Tag, field_validator

from shadowlab.apis.openai_chat_wire import parse_tool_arguments
from shadowlab.apis.wire import OtherKind, StrOrList, WireModel, WireRequest, by_type, tag_of, tagged, type_of

# fmt: off
__all__ = [
    "OpenAIResponsesRequest", "ResponsesFunctionCall", "ResponsesFunctionCallOutput", "ResponsesFunctionTool",
    "ResponsesInputFile", "ResponsesInputImage", "ResponsesMessage", "ResponsesNamedToolChoice",
    "ResponsesOutputText", "ResponsesReasoning", "ResponsesReasoningItem", "ResponsesRefusal",
    "ResponsesSummary", "ResponsesText",
]
# fmt: on


class ResponsesText(WireModel):
    """`input_text` (what a user, system or developer says)."""

    type: Literal["input_text"]
    text: str


class ResponsesOutputText(WireModel):
    """`output_text`: an earlier answer of the model, sent back as history."""

    type: Literal["output_text"]
    text: str
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


class ResponsesRefusal(WireModel):
    type: Literal["refusal"]
    refusal: str


class ResponsesInputImage(WireModel):
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


class ResponsesInputFile(WireModel):
    type: Literal["input_file"]
    file_data: str | None = None
    file_id: str | None = None
    file_url: str | None = None
    filename: str | None = None


_Part = Annotated[
    Annotated[ResponsesText, Tag("~input_text")]
    | Annotated[ResponsesOutputText, Tag("~output_text")]
    | Annotated[ResponsesRefusal, Tag("~refusal")]
    | Annotated[ResponsesInputImage, Tag("~input_image")]
    | Annotated[ResponsesInputFile, Tag("~input_file")]
    | Annotated[OtherKind, Tag("~other")],
    by_type("a content part object", "input_text", "output_text", "refusal", "input_image", "input_file"),
]


class ResponsesMessage(WireModel):
    """A message item (`type: message`, or no type at all)."""

    type: Literal["message"] | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: StrOrList[_Part]
    id: str | None = None  # of an earlier output item; the answer does not depend on it
    status: str | None = None


class ResponsesFunctionCall(WireModel):
    """A function call the model made earlier (assistant side); `arguments` is a JSON object string."""

    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    id: str | None = None
    status: str | None = None

    @field_validator("arguments")
    @classmethod
    def _json_object(cls, value: str) -> str:
        parse_tool_arguments(value)  # refused at ingest, so the replayer never meets it
        return value


class ResponsesFunctionCallOutput(WireModel):
    """The result of a function call (user side): a string, or input_text/input_image/input_file parts."""

    type: Literal["function_call_output"]
    call_id: str
    output: StrOrList[_Part]
    id: str | None = None
    status: str | None = None


class ResponsesSummary(WireModel):
    type: str
    text: str


class ResponsesReasoningItem(WireModel):
    """Reasoning of an earlier answer; only the API that made it can use it (`encrypted_content`)."""

    type: Literal["reasoning"]
    summary: list[ResponsesSummary] | None = None


def _item_kind(value: Any) -> Any:
    kind = type_of(value)
    return "message" if kind is None else kind


_ITEM_KINDS = frozenset({"message", "function_call", "function_call_output", "reasoning"})
_Item = Annotated[
    Annotated[ResponsesMessage, Tag("~message")]
    | Annotated[ResponsesFunctionCall, Tag("~function_call")]
    | Annotated[ResponsesFunctionCallOutput, Tag("~function_call_output")]
    | Annotated[ResponsesReasoningItem, Tag("~reasoning")]
    | Annotated[OtherKind, Tag("~other")],
    tagged("an input item object", tag_of(_item_kind, _ITEM_KINDS, "~other")),
]


class ResponsesFunctionTool(WireModel):
    """A function tool: its name, description and parameters at the top level (not under `function`)."""

    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ResponsesNamedToolChoice(WireModel):
    """`{"type": "function", "name": ...}`: the model must call that function."""

    type: Literal["function"]
    name: str


def _tool_choice_tag(value: Any) -> str | None:
    return "~mode" if isinstance(value, str) else tag_of(type_of, frozenset({"function"}), "~other")(value)


_Tool = Annotated[
    Annotated[ResponsesFunctionTool, Tag("~function")] | Annotated[OtherKind, Tag("~other")],
    by_type("a tool object", "function"),
]
_ToolChoice = Annotated[
    Annotated[Literal["auto", "none", "required"], Tag("~mode")]
    | Annotated[ResponsesNamedToolChoice, Tag("~function")]
    | Annotated[OtherKind, Tag("~other")],
    tagged("a tool_choice string or object", _tool_choice_tag),
]


class ResponsesReasoning(WireModel):
    effort: str | None = None
    summary: str | None = None


class OpenAIResponsesRequest(WireRequest):
    """OpenAI Responses API request body (POST /v1/responses); unknown fields are kept."""

    input: StrOrList[_Item]
    instructions: str | None = None
    tools: list[_Tool] | None = None
    tool_choice: _ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    reasoning: ResponsesReasoning | None = None
    previous_response_id: str | None = None
    text: dict[str, Any] | None = None
    store: bool | None = None
    stream: bool | None = None
