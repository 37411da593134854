"""Raw responses: `with_raw_response` and `with_streaming_response` return the SDK's response wrapper, which
the caller reads later; the capture waits for it.

- Body already read (`with_raw_response` without `stream`): captured at once.
- Body not read yet (`with_streaming_response`): captured when the caller reads it (`parse()`, `read()`,
  `json()` and `text()` all read through `read()`), timed to the end of that read.
- A stream: observed from the `Stream` that `parse()` returns, like any stream; the block ending before the
  stream did is an abandoned stream.
- Read only as bytes or lines (`iter_bytes()`, `iter_lines()`): not captured, counted as `failed`.

The wrapper object the caller gets is the SDK's own; only its `parse`, `read` and `close` are replaced on it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shadowlab_tee.calls import Call


def is_raw_response_class(cls: type) -> bool:
    """True for the SDKs' `LegacyAPIResponse` / `APIResponse` / `AsyncAPIResponse` (by their shape)."""
    return hasattr(cls, "http_request") and hasattr(cls, "parse")


def observe(response: Any, call: Call) -> None:
    """Capture `response` now if its body is in memory, else when the caller reads or parses it."""
    if response.http_response.is_closed:
        call.body_read(response)
        return
    if call.streamed:
        _hook(response, "parse", lambda result: _watch(result, call), call)
    else:
        _hook(response, "read", lambda _: call.body_read(response), call)
    if callable(getattr(response, "close", None)):
        _hook(response, "close", lambda _: call.response_closed(), call, before=True)


def parsed(from_result: Callable[[Any], dict[str, Any]], response: Any) -> dict[str, Any]:
    """On the worker thread: the response fields of a read body. `_parse` is the SDKs' parse without its
    cache and post-parser (which may raise on a structured-output body that does not fit its type)."""
    return from_result(response._parse())


def _watch(result: Any, call: Call) -> None:
    if not call.watching and not call.done:
        call.returned(result)


def _hook(response: Any, name: str, then: Callable[[Any], None], call: Call, *, before: bool = False) -> None:
    original = getattr(response, name)
    if inspect.iscoroutinefunction(original):

        async def hooked_async(*args: Any, **kwargs: Any) -> Any:
            if before:
                _then(then, None, call)
            try:
                result = await original(*args, **kwargs)
            except BaseException as exc:
                call.raised(exc)
                raise
            if not before:
                _then(then, result, call)
            return result

        setattr(response, name, hooked_async)
        return

    def hooked(*args: Any, **kwargs: Any) -> Any:
        if before:
            _then(then, None, call)
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            call.raised(exc)
            raise
        if not before:
            _then(then, result, call)
        return result

    setattr(response, name, hooked)


def _then(then: Callable[[Any], None], result: Any, call: Call) -> None:
    try:
        then(result)
    except Exception as exc:  # the tee's own error never reaches the caller
        call.tee.sink.count_internal_failure(exc)
