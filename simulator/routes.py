"""Which API a path speaks, and how that API renders: its request view, bodies, stream, errors and usage.

One `Route` per API; the server knows APIs only through this table, so a new API is its view in
`requests.py`, its renderer module beside `openai_api.py` and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from simulator import anthropic_api, openai_api, openai_responses_api
from simulator.answers import Answer
from simulator.profiles import Fault
from simulator.requests import RequestView, view_anthropic, view_openai, view_responses
from simulator.wire import StreamPlan

__all__ = ["ROUTES", "Api", "Route", "route_of", "route_of_api"]

Api = Literal["anthropic", "openai", "responses"]


@dataclass(frozen=True)
class Route:
    api: Api
    id_header: str  # the response header naming the request (`request-id` / `x-request-id`)
    view: Callable[[Any], RequestView]
    errors: dict[Fault, tuple[int, str, str]]  # fault -> (HTTP status, error type, message)
    error_body: Callable[[str, str, str], dict[str, Any]]  # (type, message, request id)
    usage_of: Callable[[Answer], dict[str, Any]]
    whole_body: Callable[[Answer, RequestView], dict[str, Any]]
    stream_plan: Callable[[Answer, RequestView, int, dict[str, Any]], StreamPlan]  # (.., chunk tokens, body)


def _include_usage(payload: dict[str, Any]) -> bool:
    options = payload.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


_ANTHROPIC = Route(
    "anthropic",
    "request-id",
    view_anthropic,
    anthropic_api.ERRORS,
    anthropic_api.error_body,
    anthropic_api.usage_of,
    lambda answer, view: anthropic_api.message_body(answer, view.model),
    lambda answer, view, chunk, payload: anthropic_api.stream_plan(answer, view.model, chunk),
)
_OPENAI = Route(
    "openai",
    "x-request-id",
    view_openai,
    openai_api.ERRORS,
    openai_api.error_body,
    openai_api.usage_of,
    lambda answer, view: openai_api.completion_body(answer, view.model),
    lambda answer, view, chunk, payload: openai_api.stream_plan(
        answer, view.model, chunk, _include_usage(payload)
    ),
)
_RESPONSES = Route(
    "responses",
    "x-request-id",
    view_responses,
    openai_responses_api.ERRORS,
    openai_responses_api.error_body,
    openai_responses_api.usage_of,
    openai_responses_api.response_body,
    lambda answer, view, chunk, payload: openai_responses_api.stream_plan(answer, view, chunk),
)
ROUTES: dict[str, Route] = {
    "/v1/messages": _ANTHROPIC,
    "/v1/chat/completions": _OPENAI,
    "/chat/completions": _OPENAI,
    "/v1/responses": _RESPONSES,
    "/responses": _RESPONSES,
}  # fmt: skip
_BY_API = {route.api: route for route in ROUTES.values()}


def route_of(path: str) -> Route | None:
    """The API served at `path` (a trailing slash ignored)."""
    return ROUTES.get(path.rstrip("/"))


def route_of_api(api: Api) -> Route:
    return _BY_API[api]
