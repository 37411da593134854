"""`wrap()`: a stand-in for an Anthropic or OpenAI client that mirrors each model call into a sink.

Mirrored: what `shadowlab_tee.surface.MIRRORED` lists (`messages.create` / `.parse` / `.stream` and their
`beta.messages` twins; `chat.completions.create` / `.parse` / `.stream`, `responses.create` / `.parse` /
`.stream`, and the `beta` twins), also under `with_raw_response` and `with_streaming_response`; every
other attribute is the client's own. The SDKs are never imported here: the client is recognised by its shape.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar, cast

from shadowlab_tee.calls import SPECS, Call, Tee, hook_stream_manager
from shadowlab_tee.record import Source, TeeConfigError
from shadowlab_tee.sink import Sink, TeeStats
from shadowlab_tee.surface import MIRRORED, Vendor

C = TypeVar("C")

# Helper arguments that are not body fields: `output_format` (Anthropic) and `text_format` (Responses), and
# any Python type (a pydantic `response_format`), which the SDK turns into a schema inside the body; pass the
# body field (`output_config`, `text`, a dict `response_format`) to have the schema captured.
_HELPER_ONLY: Final = frozenset({"output_format", "text_format"})
_STREAM_ADD: Final = {"stream": True}
_NO_ADD: Final[Mapping[str, Any]] = {}


def _tree(vendor: Vendor) -> dict[str, Any]:
    """`MIRRORED` as a tree: a name leads to a subtree, or to (api, methods) at a resource."""
    tree: dict[str, Any] = {}
    for path, leaf in MIRRORED[vendor].items():
        *parents, name = path.split(".")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[name] = leaf
    return tree


_TREES: Final = {vendor: _tree(vendor) for vendor in MIRRORED}


class _Part:
    """A part of the client (the client, `chat`, `beta`, a resource): its mirrored children, the rest its own.

    A mirrored child is built on first access, so wrapping imports no SDK module the app does not use
    (openai's `beta` alone imports for seconds). `with_raw_response` and `with_streaming_response` are the
    SDK's own views, built over this part instead of the real one: the SDK makes them from the part's methods,
    so theirs are the mirrored ones.
    """

    def __init__(self, real: Any, tee: Tee, is_async: bool, tree: Mapping[str, Any]) -> None:
        self._tee_real = real
        self._tee = tee
        self._tee_async = is_async
        self._tee_tree = tree

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_tee_"):  # not set yet (a half-built object): never look it up on the client
            raise AttributeError(name)
        node = self._tee_tree.get(name)
        if node is None:
            return getattr(self._tee_real, name)
        real = getattr(self._tee_real, name)
        if isinstance(node, dict):
            part: _Part = _Part(real, self._tee, self._tee_async, node)
        else:
            api, methods = node
            part = _Resource(real, self._tee.speaking(SPECS[api]), self._tee_async, methods)
        self.__dict__[name] = part  # found directly from now on
        return part

    @functools.cached_property
    def with_raw_response(self) -> Any:
        return _sdk_view(self, "with_raw_response")

    @functools.cached_property
    def with_streaming_response(self) -> Any:
        return _sdk_view(self, "with_streaming_response")


def _sdk_view(part: _Part, name: str) -> Any:
    view = inspect.getattr_static(type(part._tee_real), name, None)
    if isinstance(view, functools.cached_property):
        return view.func(part)
    return getattr(part._tee_real, name)  # a shape this version does not know: the SDK's own, not mirrored


class _Resource(_Part):
    """An SDK resource whose answer-producing methods (`create`, `parse`, `stream`) are mirrored."""

    def __init__(self, real: Any, tee: Tee, is_async: bool, methods: tuple[str, ...]) -> None:
        super().__init__(real, tee, is_async, {})
        for name in methods:
            if not callable(getattr(real, name, None)):
                continue
            if name == "stream":
                self.stream = self._stream
            else:
                begin = self._tee.begin if name == "create" else self._begin_helper
                mirror = _mirrored_async if is_async else _mirrored_sync
                setattr(self, name, mirror(real, name, begin))

    def _begin_helper(self, kwargs: dict[str, Any], add: Mapping[str, Any] = _NO_ADD) -> Call | None:
        # `parse` and `stream` take Python types the SDK turns into a schema in the body: not body fields.
        types = frozenset(name for name, value in kwargs.items() if isinstance(value, type))
        return self._tee.begin(kwargs, drop=_HELPER_ONLY | types, add=add)

    def _stream(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("response_id") is not None:  # Responses: resuming a stored response, not a new request
            kwargs.pop("tee_source", None)
            kwargs.pop("tee_request_id", None)
            call = None
        else:
            call = self._begin_helper(kwargs, _STREAM_ADD)
        manager = self._tee_real.stream(*args, **kwargs)
        if call is not None:
            try:
                hook_stream_manager(manager, call)
            except Exception as exc:
                self._tee.sink.count_internal_failure(exc)
        return manager


Begin = Callable[[dict[str, Any]], Call | None]


def _mirrored_sync(real: Any, name: str, begin: Begin) -> Callable[..., Any]:
    def method(*args: Any, **kwargs: Any) -> Any:
        call = begin(kwargs)
        if call is None:
            return getattr(real, name)(*args, **kwargs)
        try:
            result = getattr(real, name)(*args, **kwargs)
        except BaseException as exc:
            call.raised(exc)
            raise
        return call.returned(result)

    return method


def _mirrored_async(real: Any, name: str, begin: Begin) -> Callable[..., Any]:
    async def method(*args: Any, **kwargs: Any) -> Any:
        call = begin(kwargs)
        if call is None:
            return await getattr(real, name)(*args, **kwargs)
        try:
            result = await getattr(real, name)(*args, **kwargs)
        except BaseException as exc:
            call.raised(exc)
            raise
        return call.returned(result)

    return method


class TeedClient(_Part):
    """The wrapped client: the original's attributes, plus the tee's counters and `flush`.

    `isinstance(wrapped, anthropic.Anthropic)` holds, as for the original client.
    """

    def __init__(self, client: Any, tee: Tee, is_async: bool, vendor: Vendor) -> None:
        super().__init__(client, tee, is_async, _TREES[vendor])
        self._tee_vendor: Vendor = vendor

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # noqa: F811
        return type(self._tee_real)

    def __repr__(self) -> str:
        return f"<tee of {self._tee_real!r} -> {self._tee.sink!r}>"

    def __enter__(self) -> TeedClient:
        self._tee_real.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._tee_real.__exit__(*exc_info)

    async def __aenter__(self) -> TeedClient:
        await self._tee_real.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._tee_real.__aexit__(*exc_info)

    def with_options(self, **options: Any) -> TeedClient:
        """The client's `with_options`, still mirrored into the same sink."""
        client = self._tee_real.with_options(**options)
        return TeedClient(client, self._tee, self._tee_async, self._tee_vendor)

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


def _detect(client: object) -> tuple[Vendor, bool]:
    messages = getattr(client, "messages", None)
    if callable(getattr(messages, "create", None)) and callable(getattr(messages, "stream", None)):
        return "anthropic", inspect.iscoroutinefunction(inspect.unwrap(messages.create))  # type: ignore[union-attr]
    completions = getattr(getattr(client, "chat", None), "completions", None)
    create = getattr(completions, "create", None)
    if callable(create):
        return "openai", inspect.iscoroutinefunction(inspect.unwrap(create))
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
    vendor, is_async = _detect(client)
    spec = SPECS["anthropic.messages" if vendor == "anthropic" else "openai.chat"]
    tee = Tee(sink, source, float(sample_rate), spec)
    return cast(C, TeedClient(client, tee, is_async, vendor))
