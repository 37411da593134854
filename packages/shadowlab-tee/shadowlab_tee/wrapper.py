"""`wrap()`: a stand-in for an Anthropic or OpenAI client that mirrors each model call into a sink.

Mirrored: `messages.create` / `messages.stream` (Anthropic), `chat.completions.create` / `.stream` and
`responses.create` / `.stream` (OpenAI); every other attribute is the client's own. The SDKs are never
imported here: the client is recognised by its shape.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any, Final, TypeVar, cast

from shadowlab_tee.calls import ANTHROPIC, OPENAI, OPENAI_RESPONSES, ApiSpec, Call, Tee, hook_stream_manager
from shadowlab_tee.record import Source, TeeConfigError
from shadowlab_tee.sink import Sink, TeeStats

C = TypeVar("C")

# Stream-helper arguments that are not body fields: `output_format` (Anthropic) and `text_format` (Responses),
# and any Python type (a pydantic `response_format`), which the SDK turns into a schema inside the body; pass
# the body field (`output_config`, `text`, a dict `response_format`) to have the schema captured.
_STREAM_HELPER_ONLY: Final = frozenset({"output_format", "text_format"})
_STREAM_ADD: Final = {"stream": True}


class _Resource:
    """An SDK resource whose `create` is mirrored; anything else is the resource's own."""

    def __init__(self, real: Any, tee: Tee, is_async: bool) -> None:
        self._tee_real = real
        self._tee = tee
        self.create = self._create_async if is_async else self._create_sync

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tee_real, name)

    def _create_sync(self, *args: Any, **kwargs: Any) -> Any:
        call = self._tee.begin(kwargs)
        if call is None:
            return self._tee_real.create(*args, **kwargs)
        try:
            result = self._tee_real.create(*args, **kwargs)
        except BaseException as exc:
            call.raised(exc)
            raise
        return call.returned(result)

    async def _create_async(self, *args: Any, **kwargs: Any) -> Any:
        call = self._tee.begin(kwargs)
        if call is None:
            return await self._tee_real.create(*args, **kwargs)
        try:
            result = await self._tee_real.create(*args, **kwargs)
        except BaseException as exc:
            call.raised(exc)
            raise
        return call.returned(result)


class _StreamingResource(_Resource):
    """A resource whose `stream()` helper is mirrored too: the request its manager sends on entering."""

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        call = self._begin_stream(kwargs)
        manager = self._tee_real.stream(*args, **kwargs)
        if call is not None:
            try:
                hook_stream_manager(manager, call)
            except Exception as exc:
                self._tee.sink.count_internal_failure(exc)
        return manager

    def _begin_stream(self, kwargs: dict[str, Any]) -> Call | None:
        types = frozenset(name for name, value in kwargs.items() if isinstance(value, type))
        return self._tee.begin(kwargs, drop=_STREAM_HELPER_ONLY | types, add=_STREAM_ADD)


class _OpenAIResponses(_StreamingResource):
    def _begin_stream(self, kwargs: dict[str, Any]) -> Call | None:
        if kwargs.get("response_id") is not None:  # resuming a stored response: not a new request
            kwargs.pop("tee_source", None)
            kwargs.pop("tee_request_id", None)
            return None
        return super()._begin_stream(kwargs)


class _OpenAIChat:
    def __init__(self, real: Any, tee: Tee, is_async: bool) -> None:
        self._tee_real = real
        self.completions = _StreamingResource(real.completions, tee, is_async)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tee_real, name)


class TeedClient:
    """The wrapped client: the original's attributes, plus the tee's counters and `flush`.

    `isinstance(wrapped, anthropic.Anthropic)` holds, as for the original client.
    """

    def __init__(self, client: Any, tee: Tee, is_async: bool) -> None:
        self._tee_client = client
        self._tee = tee
        self._tee_async = is_async
        if tee.spec is ANTHROPIC:
            self.messages = _StreamingResource(client.messages, tee, is_async)
        else:
            self.chat = _OpenAIChat(client.chat, tee, is_async)
            if getattr(client, "responses", None) is not None:
                self.responses = _OpenAIResponses(client.responses, tee.speaking(OPENAI_RESPONSES), is_async)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tee_client, name)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # noqa: F811
        return type(self._tee_client)

    def __repr__(self) -> str:
        return f"<tee of {self._tee_client!r} -> {self._tee.sink!r}>"

    def __enter__(self) -> TeedClient:
        self._tee_client.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._tee_client.__exit__(*exc_info)

    async def __aenter__(self) -> TeedClient:
        await self._tee_client.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._tee_client.__aexit__(*exc_info)

    def with_options(self, **options: Any) -> TeedClient:
        """The client's `with_options`, still mirrored into the same sink."""
        return TeedClient(self._tee_client.with_options(**options), self._tee, self._tee_async)

    copy = with_options

    # ---- the tee's own surface ---------------------------------------------------------------------

    @property
    def tee_sink(self) -> Sink:
        return self._tee.sink

    def stats(self) -> TeeStats:
        return self._tee.sink.stats()

    @property
    def sent(self) -> int:
        return self._tee.sink.sent

    @property
    def dropped(self) -> int:
        return self._tee.sink.dropped

    @property
    def failed(self) -> int:
        return self._tee.sink.failed

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` s for queued captures; True when everything since the last flush arrived."""
        return self._tee.sink.flush(timeout)


def _detect(client: object) -> tuple[ApiSpec, bool]:
    messages = getattr(client, "messages", None)
    if callable(getattr(messages, "create", None)) and callable(getattr(messages, "stream", None)):
        return ANTHROPIC, inspect.iscoroutinefunction(inspect.unwrap(messages.create))  # type: ignore[union-attr]
    completions = getattr(getattr(client, "chat", None), "completions", None)
    create = getattr(completions, "create", None)
    if callable(create):
        return OPENAI, inspect.iscoroutinefunction(inspect.unwrap(create))
    raise TeeConfigError(
        "wrap() expects an anthropic.Anthropic/AsyncAnthropic or openai.OpenAI/AsyncOpenAI client, "
        f"got {type(client).__qualname__} (no messages.create/stream, no chat.completions.create)"
    )


def _default_service() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"


def wrap(client: C, sink: Sink, source: Source | str | None = None, *, sample_rate: float = 1.0) -> C:
    """Mirror `client`'s model calls into `sink`; the result is used exactly like `client`.

    `source` (a `Source`, or just the service name; default: the program's name) is stamped on every
    capture; a call may add `tee_source={...}` and `tee_request_id="..."` keyword arguments, which
    the tee removes before the SDK sees them. `sample_rate` in [0, 1] is the share of calls mirrored.
    """
    if not isinstance(sink, Sink):
        raise TeeConfigError(f"wrap() expects a shadowlab_tee Sink, got {type(sink).__qualname__}")
    if not isinstance(sample_rate, int | float) or not 0.0 <= sample_rate <= 1.0:
        raise TeeConfigError(f"sample_rate must be a number in [0, 1], got {sample_rate!r}")
    if source is None:
        source = Source(service=_default_service())
    elif isinstance(source, str):
        source = Source(service=source)
    spec, is_async = _detect(client)
    return cast(C, TeedClient(client, Tee(sink, source, float(sample_rate), spec), is_async))
