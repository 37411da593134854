"""The API shapes a capture may have, one module each, and the one internal request they all normalise to.

| module | API |
|---|---|
| `anthropic` (+ `anthropic_wire`, its request models) | Anthropic Messages, `anthropic.messages` |
| `openai_chat` (+ `openai_chat_wire`) | OpenAI chat completions, `openai.chat` |
| `openai_responses` (+ `openai_responses_wire`) | OpenAI Responses API, `openai.responses` |
| `internal` | the internal request (`NormalizedRequest`), `Translation`, what the modules share |

Each module owns its wire models, normalisation to the internal request, translation back to its body, an
arm applied to a captured body (same-API replay) and usage parsing. Adding an API = writing its module and
its wire models, then registering it: its name in `internal.Api` and `internal.API_NAMES`, an `ApiShape` in
`_SHAPES` below. The capture schema, fingerprints, providers and the
replayer find it here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shadowlab.apis import anthropic, openai_chat, openai_responses
from shadowlab.apis.anthropic_wire import AnthropicMessagesRequest
from shadowlab.apis.internal import API_NAMES, Api, ArmBody, NormalizedRequest, Translation
from shadowlab.apis.openai_chat_wire import OpenAIChatRequest
from shadowlab.apis.openai_responses_wire import OpenAIResponsesRequest
from shadowlab.apis.wire import WireRequest
from shadowlab.capture_errors import CaptureError, describe, validate_as
from shadowlab.usage import Usage

if TYPE_CHECKING:
    from shadowlab.capture import Capture

# fmt: off
__all__ = [
    "API_NAMES", "Api", "ApiShape", "api_of_request", "api_shape", "normalize_request",
    "normalize_request_body", "request_models", "usage_from_capture", "validate_request_body",
]
# fmt: on


@dataclass(frozen=True)
class ApiShape:
    """What shadowlab knows of one API: its request model and the module functions that work on it."""

    name: Api
    request_model: type[WireRequest]
    normalize: Callable[[Any], NormalizedRequest]  # takes a validated `request_model`
    translate: Callable[..., Translation]  # (request, *, model=None, **api options) -> a body
    with_arm: Callable[..., ArmBody]  # (body, *, model, params, system) -> the body an arm sends
    usage: Callable[[Mapping[str, Any]], Usage]  # the usage object of a (non-streamed) response


_SHAPES: dict[str, ApiShape] = {
    "anthropic.messages": ApiShape(
        "anthropic.messages", AnthropicMessagesRequest, anthropic.normalize, anthropic.to_anthropic,
        anthropic.with_arm, anthropic.usage_from_anthropic,
    ),
    "openai.chat": ApiShape(
        "openai.chat", OpenAIChatRequest, openai_chat.normalize, openai_chat.to_openai, openai_chat.with_arm,
        openai_chat.usage_from_openai,
    ),
    "openai.responses": ApiShape(
        "openai.responses", OpenAIResponsesRequest, openai_responses.normalize, openai_responses.to_responses,
        openai_responses.with_arm, openai_responses.usage_from_responses,
    ),
}  # fmt: skip
assert tuple(_SHAPES) == API_NAMES, "every name in internal.Api has its shape here, in the same order"


def api_shape(api: str) -> ApiShape:
    """The shape of `api`; CaptureError `unknown_api` (path `api`) names the known ones."""
    shape = _SHAPES.get(api)
    if shape is None:
        raise CaptureError("api", " or ".join(API_NAMES), describe(api, safe=True), "unknown_api")
    return shape


def api_of_request(request: WireRequest) -> Api | None:
    """The API whose request model `request` is, if any."""
    return next((shape.name for shape in _SHAPES.values() if type(request) is shape.request_model), None)


def request_models() -> tuple[tuple[Api, type[WireRequest]], ...]:
    """Every API's name and request model, in registration order (the capture schema lists them so)."""
    return tuple((shape.name, shape.request_model) for shape in _SHAPES.values())


def validate_request_body(api: str, body: Any) -> WireRequest:
    """A stored request body validated against the model of its `api`; CaptureError paths start `request`."""
    model = api_shape(api).request_model
    return body if isinstance(body, model) else validate_as(model, body, "request")


def normalize_request_body(api: str, body: Mapping[str, Any] | WireRequest) -> NormalizedRequest:
    """Normalise a stored request body; CaptureError (paths `request.…`) when it does not fit its api."""
    return api_shape(api).normalize(validate_request_body(api, body))


def normalize_request(capture: Capture) -> NormalizedRequest:
    """The normalised request of a validated capture."""
    return normalize_request_body(capture.api, capture.request)


def usage_from_capture(capture: Capture) -> Usage | None:
    """Usage of the production response of a capture; None when it has no response or no usage (the tee
    marks the latter `usage_status: "absent"`: unknown, never zero)."""
    if capture.response is None or capture.response.usage is None:
        return None
    return api_shape(capture.api).usage(capture.response.usage)
