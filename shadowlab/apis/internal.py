"""The internal request: one shape for a request of any API (DESIGN §3), and what every API module shares.

Each module of `shadowlab.apis` normalises its API's body to `NormalizedRequest` and translates one back to
its body. Lossy, and says so: what has no place here (cache_control, server tools, audio, n>1, unknown
fields, ...) is counted in `untranslated`; what a target API cannot carry is listed in `Translation.dropped`.
Split system texts (blocks, several messages) are joined with a blank line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shadowlab.apis.wire import OtherKind

# fmt: off
__all__ = [
    "API_NAMES", "DEFAULT_MAX_TOKENS", "Api", "ArmBody", "Block", "DocumentBlock", "ImageBlock", "Message",
    "NormalizedRequest", "Notes", "ResultBlock", "TextBlock", "ThinkingBlock", "ToolChoice",
    "ToolResultBlock", "ToolSpec", "ToolUseBlock", "Translation", "copy_set", "join_texts", "result_blocks",
]
# fmt: on

# The API shapes a capture may have; each has its module in `shadowlab.apis`, registered there.
Api = Literal["anthropic.messages", "openai.chat", "openai.responses"]
API_NAMES: tuple[Api, ...] = ("anthropic.messages", "openai.chat", "openai.responses")
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; a replay needs a cap for its budget


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


@dataclass(frozen=True)
class Translation:
    """A body for one API, and what it could not carry (what normalisation dropped first)."""

    body: dict[str, Any]
    dropped: tuple[str, ...]


@dataclass(frozen=True)
class ArmBody:
    """A captured body with an arm's model, parameters and system prompt, sent as is (same-API replay)."""

    body: dict[str, Any]
    max_output_tokens: int
    notes: tuple[str, ...]


class Notes:
    """Counts what normalisation drops, for `untranslated`."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, what: str) -> None:
        self.counts[what] += 1

    def extras(self, obj: BaseModel, label: str) -> None:
        if isinstance(obj, OtherKind):
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


def result_blocks(blocks: tuple[Block, ...]) -> tuple[ResultBlock, ...]:
    """The blocks a tool result can hold (text, images, documents)."""
    return tuple(b for b in blocks if isinstance(b, TextBlock | ImageBlock | DocumentBlock))


def join_texts(texts: Iterable[str]) -> str:
    """Split system texts as one, joined with a blank line."""
    return "\n\n".join(texts)


def copy_set(request: NormalizedRequest, body: dict[str, Any], **names: str) -> None:
    """Copy the request's attributes named as keys to `body[value]`, those that are set."""
    for attr, key in names.items():
        value = getattr(request, attr)
        if value is not None:
            body[key] = value
