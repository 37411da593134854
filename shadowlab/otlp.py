"""OpenTelemetry GenAI spans as captures: an OTLP/HTTP JSON export (`ExportTraceServiceRequest`) in, schema-v1
capture dicts out, each span that cannot be one rejected with its reason (docs/capture.md, "OpenTelemetry").

Message contents come from `gen_ai.input.messages`, `gen_ai.output.messages` and `gen_ai.system_instructions`
(the current GenAI conventions), OpenLLMetry's `gen_ai.prompt.<i>.*` / `gen_ai.completion.<i>.*` attributes,
or the older `gen_ai.<role>.message` / `gen_ai.choice` span events. A span without prompt content (content
capture off in the instrumentation) is rejected, never stored without its prompt; spans that are not GenAI
chat calls (HTTP, database, embeddings, tools) are ignored and counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shadowlab.capture import CaptureError, CaptureErrorCode, capture_from_dict

__all__ = [
    "OtlpCaptures", "OtlpRejectCode", "RejectedSpan", "SpanOutcome", "captures_from_otlp",
    "read_otlp_documents", "span_outcomes",
]  # fmt: skip

# Why a GenAI chat span is not a capture (a span whose capture fails validation has the capture error's code).
OtlpRejectCode = Literal["no_prompt_content", "no_request_model", "unsupported_provider", "no_max_tokens"]

_APIS = {"anthropic": "anthropic.messages", "openai": "openai.chat", "azure.ai.openai": "openai.chat"}
_CHAT_OPERATIONS = frozenset({"chat"})
# gen_ai.request.* -> the request field of each API
_PARAMS = {
    "max_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
    "seed": "seed", "frequency_penalty": "frequency_penalty", "presence_penalty": "presence_penalty",
}  # fmt: skip
_ROLE_EVENTS = {f"gen_ai.{role}.message": role for role in ("system", "user", "assistant", "tool")}
_SPAN_ERROR = 2  # OTLP status code STATUS_CODE_ERROR


class OtlpFormatError(ValueError):
    """The document is not an OTLP/HTTP JSON trace export."""


@dataclass(frozen=True)
class RejectedSpan:
    span: str  # "<trace id>/<span id>"
    reason: str
    code: OtlpRejectCode | CaptureErrorCode


@dataclass(frozen=True)
class SpanOutcome:
    """One span of an export: its capture, or why it is not one, or neither (not a GenAI chat call)."""

    raw: Mapping[str, Any]  # the span as exported (OTLP JSON)
    capture: dict[str, Any] | None = None
    rejected: RejectedSpan | None = None

    @property
    def where(self) -> str:
        """`<trace id>/<span id>`."""
        return f"{self.raw.get('traceId', '?')}/{self.raw.get('spanId', '?')}"


@dataclass
class OtlpCaptures:
    captures: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[RejectedSpan] = field(default_factory=list)
    ignored: int = 0  # spans that are not GenAI chat calls


def read_otlp_documents(text: str) -> Iterator[Mapping[str, Any]]:
    """One export (a JSON object) or several, one per line (the collector's file exporter)."""
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    chunks = (
        [whole] if whole is not None else [json.loads(line) for line in text.splitlines() if line.strip()]
    )
    for chunk in chunks:
        if not isinstance(chunk, Mapping) or not isinstance(chunk.get("resourceSpans"), list):
            raise OtlpFormatError("expected an OTLP JSON trace export: an object with a resourceSpans list")
        yield chunk


def value_of(any_value: Mapping[str, Any]) -> Any:
    """An OTLP `AnyValue` as plain JSON (int64 arrive as strings in OTLP JSON)."""
    if "stringValue" in any_value:
        return any_value["stringValue"]
    if "intValue" in any_value:
        return int(any_value["intValue"])
    if "doubleValue" in any_value:
        return float(any_value["doubleValue"])
    if "boolValue" in any_value:
        return bool(any_value["boolValue"])
    if "arrayValue" in any_value:
        return [value_of(v) for v in any_value["arrayValue"].get("values", [])]
    if "kvlistValue" in any_value:
        return attributes_of(any_value["kvlistValue"].get("values", []))
    return None


def attributes_of(pairs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {pair["key"]: value_of(pair.get("value", {})) for pair in pairs}


def captures_from_otlp(documents: Iterable[Mapping[str, Any]]) -> OtlpCaptures:
    """Every span of the exports: a validated capture, a rejection with its reason, or ignored."""
    out = OtlpCaptures()
    for outcome in span_outcomes(documents):
        if outcome.capture is not None:
            out.captures.append(outcome.capture)
        elif outcome.rejected is not None:
            out.rejected.append(outcome.rejected)
        else:
            out.ignored += 1
    return out


def span_outcomes(documents: Iterable[Mapping[str, Any]]) -> Iterator[SpanOutcome]:
    """Each span of the exports, in order, with its validated capture or its rejection."""
    for document in documents:
        for resource_spans in document.get("resourceSpans", []):
            resource = attributes_of(resource_spans.get("resource", {}).get("attributes", []))
            for scope_spans in resource_spans.get("scopeSpans", []):
                for span in scope_spans.get("spans", []):
                    yield _convert(span, resource)


def _convert(span: Mapping[str, Any], resource: Mapping[str, Any]) -> SpanOutcome:
    attrs = attributes_of(span.get("attributes", []))
    operation = attrs.get("gen_ai.operation.name") or attrs.get("llm.request.type")
    provider = str(attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system") or "").lower()
    if not provider or (operation is not None and operation not in _CHAT_OPERATIONS):
        return SpanOutcome(span)
    try:
        capture = _capture(span, attrs, resource, provider)
        return SpanOutcome(span, capture=capture_from_dict(capture).to_json_dict())
    except _Rejected as exc:
        rejected = RejectedSpan(SpanOutcome(span).where, str(exc), exc.code)
    except CaptureError as exc:
        rejected = RejectedSpan(SpanOutcome(span).where, f"not a valid capture: {exc}", exc.code)
    return SpanOutcome(span, rejected=rejected)


class _Rejected(Exception):
    """Why a GenAI span cannot be a capture."""

    def __init__(self, code: OtlpRejectCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def _capture(
    span: Mapping[str, Any], attrs: Mapping[str, Any], resource: Mapping[str, Any], provider: str
) -> dict[str, Any]:
    api = _APIS.get(provider)
    if api is None:
        raise _Rejected(
            "unsupported_provider",
            f"provider {provider!r}: no capture API shape (anthropic and openai have one)",
        )
    model = attrs.get("gen_ai.request.model")
    if not isinstance(model, str) or not model:
        raise _Rejected("no_request_model", "no gen_ai.request.model")
    system, messages = _input_messages(attrs, span.get("events", []))
    if not messages:
        raise _Rejected(
            "no_prompt_content",
            "no prompt content (no gen_ai.input.messages, gen_ai.prompt.* or message events): "
            "turn content capture on in the instrumentation",
        )
    request = _request(api, model, system, messages, attrs)
    start, end = int(span.get("startTimeUnixNano", 0)), int(span.get("endTimeUnixNano", 0))
    source = {
        "service": str(resource.get("service.name") or "unknown_service"),
        "tags": {"capture_source": "otlp"},
    }
    environment = resource.get("deployment.environment.name") or resource.get("deployment.environment")
    if environment:
        source["environment"] = str(environment)
    if attrs.get("gen_ai.conversation.id"):
        source["conversation_id"] = str(attrs["gen_ai.conversation.id"])
    return {
        "schema_version": 1,
        "request_id": str(attrs.get("gen_ai.response.id") or f"{span.get('traceId')}-{span.get('spanId')}"),
        "captured_at": _rfc3339(start),
        "source": source,
        "api": api,
        "request": request,
        "response": _response(api, span, attrs, (end - start) / 1e6 if end >= start > 0 else None),
    }


def _rfc3339(unix_nano: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(unix_nano / 1e9, UTC).isoformat(timespec="microseconds")


# --- messages ------------------------------------------------------------------------------------------


def _as_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _input_messages(
    attrs: Mapping[str, Any], events: list[Mapping[str, Any]]
) -> tuple[str | None, list[Any]]:
    """(system text, messages as `{role, parts}`) from whichever form the instrumentation wrote."""
    system = _texts(_as_json(attrs.get("gen_ai.system_instructions")) or [])
    messages = _as_json(attrs.get("gen_ai.input.messages"))
    if isinstance(messages, list) and messages:
        return system or None, [m for m in messages if isinstance(m, Mapping)]
    numbered = _numbered(attrs, "gen_ai.prompt")
    if not numbered:
        numbered = [
            {"role": _ROLE_EVENTS[e["name"]], **attributes_of(e.get("attributes", []))}
            for e in events
            if e.get("name") in _ROLE_EVENTS
        ]
    parts = [{"role": m.get("role", "user"), "parts": [{"type": "text", "content": m.get("content", "")}]}
             for m in numbered if m.get("content") is not None]  # fmt: skip
    system_parts = [m for m in parts if m["role"] == "system"]
    system_text = "\n\n".join(m["parts"][0]["content"] for m in system_parts) or system or None
    return system_text, [m for m in parts if m["role"] != "system"]


def _numbered(attrs: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """OpenLLMetry's `<prefix>.<i>.<field>` attributes as a list of dicts, in index order."""
    found: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        head, _, rest = key.partition(f"{prefix}.")
        index, _, name = rest.partition(".")
        if not head and index.isdigit() and name:
            found.setdefault(int(index), {})[name] = value
    return [found[i] for i in sorted(found)]


def _texts(parts: Any) -> str:
    if isinstance(parts, str):
        return parts
    items = parts if isinstance(parts, list) else []
    return "".join(
        str(p.get("content", "")) for p in items if isinstance(p, Mapping) and p.get("type") == "text"
    )


def _request(
    api: str, model: str, system: str | None, messages: list[Any], attrs: Mapping[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model}
    for name, key in _PARAMS.items():
        value = attrs.get(f"gen_ai.request.{name}")
        if value is not None and not (api == "openai.chat" and name == "top_k"):
            body[key] = value
    stops = attrs.get("gen_ai.request.stop_sequences")
    if stops:
        body["stop_sequences" if api == "anthropic.messages" else "stop"] = list(stops)
    if api == "anthropic.messages":
        if "max_tokens" not in body:
            raise _Rejected(
                "no_max_tokens", "no gen_ai.request.max_tokens (the Messages API requires it; never guessed)"
            )
        if system:
            body["system"] = system
        body["messages"] = [_anthropic_message(m) for m in messages]
    else:
        body["messages"] = ([{"role": "system", "content": system}] if system else []) + [
            message for m in messages for message in _openai_messages(m)
        ]
    return body


def _anthropic_message(message: Mapping[str, Any]) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    for part in message.get("parts", []):
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": str(part.get("content", ""))})
        elif kind == "tool_call":
            blocks.append({"type": "tool_use", "id": part.get("id"), "name": part.get("name"),
                           "input": _as_json(part.get("arguments")) or {}})  # fmt: skip
        elif kind == "tool_call_response":
            response = part.get("response")
            content = response if isinstance(response, str) else json.dumps(response)
            blocks.append({"type": "tool_result", "tool_use_id": part.get("id"), "content": content})
    role = "assistant" if message.get("role") == "assistant" else "user"
    if all(b["type"] == "text" for b in blocks):
        return {"role": role, "content": "".join(b["text"] for b in blocks)}
    return {"role": role, "content": blocks}


def _openai_messages(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    role = str(message.get("role", "user"))
    parts = [p for p in message.get("parts", []) if isinstance(p, Mapping)]
    results = [p for p in parts if p.get("type") == "tool_call_response"]
    if results:
        return [{"role": "tool", "tool_call_id": p.get("id"), "content": _stringify(p.get("response"))}
                for p in results]  # fmt: skip
    out: dict[str, Any] = {"role": role, "content": _texts(parts)}
    calls = [p for p in parts if p.get("type") == "tool_call"]
    if calls:
        out["tool_calls"] = [_openai_tool_call(p) for p in calls]
    return [out]


def _openai_tool_call(part: Mapping[str, Any]) -> dict[str, Any]:
    function = {"name": part.get("name"), "arguments": _stringify(part.get("arguments") or {})}
    return {"id": part.get("id"), "type": "function", "function": function}


def _stringify(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# --- the response -------------------------------------------------------------------------------------


def _response(
    api: str, span: Mapping[str, Any], attrs: Mapping[str, Any], latency_ms: float | None
) -> dict[str, Any]:
    output = _as_json(attrs.get("gen_ai.output.messages"))
    completions = _numbered(attrs, "gen_ai.completion")
    choices = [
        attributes_of(e.get("attributes", []))
        for e in span.get("events", [])
        if e.get("name") == "gen_ai.choice"
    ]
    if isinstance(output, list) and output and isinstance(output[0], Mapping):
        text: str | None = _texts(output[0].get("parts", []))
    elif completions:
        text = str(completions[0].get("content", ""))
    elif choices:
        message = _as_json(choices[0].get("message"))
        text = (
            str(message.get("content", ""))
            if isinstance(message, Mapping)
            else str(choices[0].get("content", ""))
        )
    else:
        text = None
    reasons = attrs.get("gen_ai.response.finish_reasons") or []
    response: dict[str, Any] = {
        "text": text,
        "stop_reason": reasons[0] if reasons else None,
        "latency_ms": latency_ms,
    }
    usage = _usage(api, attrs)
    response["usage"] = usage
    if usage is None:
        response["usage_status"] = "absent"
    status = span.get("status", {})
    if status.get("code") == _SPAN_ERROR:
        response["error"] = {"type": str(attrs.get("error.type") or "SpanError"),
                             "message": str(status.get("message", "")), "status_code": None}  # fmt: skip
    return response


def _usage(api: str, attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The API's own usage. `gen_ai.usage.input_tokens` includes cache reads and writes (a total below its
    parts: an older instrumentation that left them out); Anthropic reports only the uncached part."""
    if attrs.get("gen_ai.usage.input_tokens") is None and attrs.get("gen_ai.usage.output_tokens") is None:
        return None
    total, completion = _count(attrs, "input_tokens"), _count(attrs, "output_tokens")
    read = _count(attrs, "cache_read.input_tokens", "cache_read_input_tokens")
    written = _count(attrs, "cache_creation.input_tokens", "cache_creation_input_tokens")
    reasoning = _count(attrs, "reasoning.output_tokens", "reasoning_tokens")
    if api == "anthropic.messages":
        uncached = total - read - written if total >= read + written else total
        usage: dict[str, Any] = {"input_tokens": uncached, "output_tokens": completion}
        parts = {"cache_read_input_tokens": read, "cache_creation_input_tokens": written}
        usage |= {key: n for key, n in parts.items() if n}
        details = ("output_tokens_details", "thinking_tokens")
    else:
        prompt = max(total, read)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if read:
            usage["prompt_tokens_details"] = {"cached_tokens": read}
        details = ("completion_tokens_details", "reasoning_tokens")
    if reasoning:  # a breakdown of the output tokens, as both APIs report it
        usage[details[0]] = {details[1]: reasoning}
    return usage


def _count(attrs: Mapping[str, Any], *names: str) -> int:
    """`gen_ai.usage.<name>` of the first name present (the current name, then an older one), else 0."""
    keys = (f"gen_ai.usage.{name}" for name in names)
    return int(next((attrs[key] for key in keys if attrs.get(key) is not None), 0))
