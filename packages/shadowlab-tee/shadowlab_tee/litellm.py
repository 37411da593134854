"""A LiteLLM callback: each successful LiteLLM SDK or proxy call becomes a schema-v1 capture.

`ShadowlabLogger` subclasses LiteLLM's `CustomLogger`, so importing this module needs litellm; the tee
package itself never imports it (`import shadowlab_tee` works without litellm, and the tee's wheel does not
depend on it). litellm is loaded with `importlib` on purpose: the tee's import contract allows only the
standard library and kafka-python, and this optional integration is the one exception, used only by apps
that run LiteLLM already.

A call is captured as `api: "openai.chat"`: the OpenAI-compatible chat body LiteLLM received (whatever the
provider behind it), the model LiteLLM sent upstream, the answer and usage of the `ModelResponse`, and
the timing LiteLLM measured. The provider and the proxy's model group go in `source.tags`. Same sinks and
guarantees as `wrap`: an append to the sink's bounded queue, and no error of the logger ever reaches
LiteLLM or the caller (counted as `failed`). See docs/tee.md, "LiteLLM".
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from shadowlab_tee import extract
from shadowlab_tee.calls import _sampled_in
from shadowlab_tee.kafka_sink import DEFAULT_TOPIC, KafkaSink
from shadowlab_tee.local_sinks import JsonlSink
from shadowlab_tee.record import (
    MAX_REQUEST_ID_CHARS,
    PendingCapture,
    Source,
    TeeConfigError,
    snapshot_request,
)
from shadowlab_tee.sink import Sink

if TYPE_CHECKING:
    _CustomLogger = object
else:
    _CustomLogger = importlib.import_module("litellm.integrations.custom_logger").CustomLogger

# The OpenAI chat body parameters LiteLLM's caller may pass: what it received, before LiteLLM maps them to
# the provider's own names (`optional_params`). LiteLLM's own arguments (`metadata`, `api_base`, keys,
# retries, fallbacks) are never part of the capture.
OPENAI_CHAT_PARAMS: Final = frozenset(
    {
        "audio", "frequency_penalty", "logit_bias", "logprobs", "max_completion_tokens", "max_tokens",
        "modalities", "n", "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key",
        "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier", "stop",
        "stream", "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user",
        "verbosity", "web_search_options",
    }
)  # fmt: skip
_NOTHING_DROPPED: Final[frozenset[str]] = frozenset()
_NO_ADD: Final[Mapping[str, Any]] = {}


class ShadowlabLogger(_CustomLogger):
    """Register with `litellm.callbacks = [ShadowlabLogger(sink, "checkout")]` or the proxy config."""

    def __init__(self, sink: Sink, source: Source | str, *, sample_rate: float = 1.0) -> None:
        if not isinstance(sink, Sink):
            raise TeeConfigError(f"ShadowlabLogger needs a shadowlab_tee sink, got {type(sink).__name__}")
        if not 0.0 <= sample_rate <= 1.0:
            raise TeeConfigError(f"sample_rate must be in [0, 1], got {sample_rate!r}")
        super().__init__()
        self.sink = sink
        self.source = Source(service=source) if isinstance(source, str) else source
        self.sample_rate = sample_rate
        # LiteLLM keeps one logger per class and public str/int/bool attributes and silently ignores others
        # registered later: this one names the sink so that a logger for another sink is not ignored.
        self.sink_key = f"{type(sink).__name__}@{id(sink):x}"

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.capture(kwargs, response_obj, start_time, end_time)

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.capture(kwargs, response_obj, start_time, end_time)

    def capture(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        """Queue the capture of one successful call; never raises (a failure is counted by the sink)."""
        try:
            pending = self._pending(kwargs, response_obj, start_time, end_time)
        except Exception as exc:
            self.sink.count_internal_failure(exc)
            return
        if pending is not None:
            self.sink.offer(pending)

    def _pending(
        self, kwargs: Mapping[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> PendingCapture | None:
        if kwargs.get("call_type") not in {"completion", "acompletion"}:
            return None  # embeddings, Responses or Anthropic-format calls through LiteLLM: not chat
        request_id = kwargs.get("litellm_call_id")
        if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS:
            request_id = None
        if self.sample_rate < 1.0 and not _sampled_in(request_id, self.sample_rate):
            self.sink.count_sampled_out()
            return None
        body = {"model": kwargs["model"], "messages": kwargs["messages"]}
        body |= {
            key: value for key, value in kwargs.items() if key in OPENAI_CHAT_PARAMS and value is not None
        }
        streamed = bool(body.pop("stream", False))
        if streamed:  # LiteLLM sets `stream: False` on every call: only a stream the caller asked for is kept
            body["stream"] = True
        extra_body = kwargs.get("extra_body")
        if isinstance(extra_body, Mapping) and extra_body:
            body["extra_body"] = extra_body
        answer = kwargs.get("complete_streaming_response") if streamed else None
        first_token = kwargs.get("completion_start_time")
        ttft_ms = _ms(first_token - start_time) if streamed and isinstance(first_token, datetime) else None
        return PendingCapture(
            api="openai.chat",
            source=self._source_of(kwargs),
            request_id=request_id,
            started_at=start_time.timestamp(),
            request_json=snapshot_request(body, drop=_NOTHING_DROPPED, add=_NO_ADD),
            # Read now, not on the worker: LiteLLM may go on changing its response object after the callback.
            extract=_already_read,
            result=extract.openai_completion(answer if answer is not None else response_obj),
            ttft_ms=ttft_ms,
            latency_ms=_ms(end_time - start_time),
            error=None,
        )

    def _source_of(self, kwargs: Mapping[str, Any]) -> Source:
        tags: dict[str, str] = {}
        provider = kwargs.get("custom_llm_provider")
        if isinstance(provider, str) and provider:
            tags["litellm_provider"] = provider
        metadata = (kwargs.get("litellm_params") or {}).get("metadata") or {}
        group = metadata.get("model_group") if isinstance(metadata, Mapping) else None
        if isinstance(group, str) and group:
            tags["litellm_model_group"] = group
        return self.source.merged({"tags": tags}) if tags else self.source


def _already_read(fields: dict[str, Any]) -> dict[str, Any]:
    return fields


def _ms(delta: timedelta) -> float:
    return max(delta.total_seconds() * 1000.0, 0.0)


# ---- the LiteLLM proxy: `litellm_settings: callbacks: shadowlab_tee.litellm.proxy_handler_instance` ----

ENV_KAFKA: Final = "SHADOWLAB_TEE_KAFKA"
ENV_JSONL: Final = "SHADOWLAB_TEE_JSONL"
ENV_TOPIC: Final = "SHADOWLAB_TEE_TOPIC"
ENV_SERVICE: Final = "SHADOWLAB_TEE_SERVICE"
ENV_ENVIRONMENT: Final = "SHADOWLAB_TEE_ENVIRONMENT"
ENV_SAMPLE_RATE: Final = "SHADOWLAB_TEE_SAMPLE_RATE"


def logger_from_env(environ: Mapping[str, str] = os.environ) -> ShadowlabLogger:
    """A logger configured by environment variables (the proxy cannot pass arguments to a callback)."""
    kafka, jsonl = environ.get(ENV_KAFKA), environ.get(ENV_JSONL)
    if bool(kafka) == bool(jsonl):
        raise TeeConfigError(
            f"set exactly one of {ENV_KAFKA} (bootstrap servers) or {ENV_JSONL} (a file path)"
        )
    sink: Sink = KafkaSink(kafka, environ.get(ENV_TOPIC) or DEFAULT_TOPIC) if kafka else JsonlSink(str(jsonl))
    rate_text = environ.get(ENV_SAMPLE_RATE) or "1"
    try:
        rate = float(rate_text)
    except ValueError:
        raise TeeConfigError(f"{ENV_SAMPLE_RATE} must be a number in [0, 1], got {rate_text!r}") from None
    source = Source(
        service=environ.get(ENV_SERVICE) or "litellm-proxy", environment=environ.get(ENV_ENVIRONMENT) or None
    )
    return ShadowlabLogger(sink, source, sample_rate=rate)


_proxy_instance: ShadowlabLogger | None = None


def __getattr__(name: str) -> Any:
    """`proxy_handler_instance`, built from the environment when the proxy first asks for it."""
    global _proxy_instance
    if name != "proxy_handler_instance":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _proxy_instance is None:
        _proxy_instance = logger_from_env()
    return _proxy_instance
