"""OpenTelemetry GenAI spans (OTLP/HTTP JSON) as captures: the current conventions, OpenLLMetry's attributes,
spans without prompt content rejected with the reason, other spans ignored; the command's one error line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from shadowlab.apis import normalize_request
from shadowlab.capture import capture_from_dict
from shadowlab.fingerprint import prompt_fingerprint
from shadowlab.otlp import captures_from_otlp, read_otlp_documents

START = 1_765_000_000_000_000_000  # ns
QUESTION = "Which index suits range scans?"


def attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}  # int64 is a string in OTLP JSON
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    if isinstance(value, list):
        return {"key": key, "value": {"arrayValue": {"values": [{"stringValue": v} for v in value]}}}
    return {"key": key, "value": {"stringValue": value}}


def span(
    span_id: str, attributes: dict[str, Any], events: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": span_id,
        "name": "chat",
        "kind": 3,
        "startTimeUnixNano": str(START),
        "endTimeUnixNano": str(START + 812_500_000),
        "attributes": [attr(k, v) for k, v in attributes.items()],
        "events": events or [],
        "status": {},
    }


def export(*spans: dict[str, Any]) -> dict[str, Any]:
    resource = {"attributes": [attr("service.name", "checkout"), attr("deployment.environment.name", "prod")]}
    return {
        "resourceSpans": [
            {"resource": resource, "scopeSpans": [{"scope": {"name": "genai"}, "spans": list(spans)}]}
        ]
    }


CURRENT = {  # the GenAI semantic conventions with content capture on
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "anthropic",
    "gen_ai.request.model": "claude-sonnet-4-5",
    "gen_ai.request.max_tokens": 512,
    "gen_ai.request.temperature": 0.2,
    "gen_ai.response.id": "msg_01",
    "gen_ai.response.finish_reasons": ["end_turn"],
    "gen_ai.usage.input_tokens": 21,
    "gen_ai.usage.output_tokens": 9,
    "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
    "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": QUESTION}]}]),
    "gen_ai.output.messages": json.dumps(
        [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": "A B-tree."}],
                "finish_reason": "end_turn",
            }
        ]
    ),
    "gen_ai.conversation.id": "conv-7",
}
OPENLLMETRY = {  # Traceloop's OpenLLMetry: numbered prompt and completion attributes
    "llm.request.type": "chat",
    "gen_ai.system": "OpenAI",
    "gen_ai.request.model": "gpt-4.1",
    "gen_ai.prompt.0.role": "system",
    "gen_ai.prompt.0.content": "Be brief.",
    "gen_ai.prompt.1.role": "user",
    "gen_ai.prompt.1.content": QUESTION,
    "gen_ai.completion.0.role": "assistant",
    "gen_ai.completion.0.content": "A B-tree.",
    "gen_ai.response.finish_reasons": ["stop"],
}


def test_spans_of_both_conventions_become_valid_captures_and_others_are_rejected_or_ignored() -> None:
    no_content = {
        k: v
        for k, v in CURRENT.items()
        if not k.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.system_"))
    }
    http = {"http.request.method": "POST", "url.full": "https://api.anthropic.com/v1/messages"}
    embeddings = {"gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "openai"}
    result = captures_from_otlp(
        [export(span("a1", CURRENT), span("b2", OPENLLMETRY), span("c3", no_content), span("d4", http),
                span("e5", embeddings))]
    )  # fmt: skip
    current, openllmetry = result.captures
    assert current["api"] == "anthropic.messages" and current["request_id"] == "msg_01"
    assert current["request"] == {
        "model": "claude-sonnet-4-5", "max_tokens": 512, "temperature": 0.2, "system": "Be brief.",
        "messages": [{"role": "user", "content": QUESTION}],
    }  # fmt: skip
    assert current["source"] == {
        "service": "checkout", "environment": "prod", "conversation_id": "conv-7",
        "tags": {"capture_source": "otlp"},
    }  # fmt: skip
    assert current["response"] == {
        "text": "A B-tree.", "stop_reason": "end_turn", "latency_ms": 812.5,
        "usage": {"input_tokens": 21, "output_tokens": 9},
    }  # fmt: skip
    assert openllmetry["api"] == "openai.chat"
    assert openllmetry["request"]["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION},
    ]  # fmt: skip
    assert openllmetry["response"]["usage"] is None and openllmetry["response"]["usage_status"] == "absent"
    (rejected,) = result.rejected
    assert rejected.span == "5b8efff798038103d269b633813fc60c/c3"
    assert rejected.reason.startswith("no prompt content") and result.ignored == 2


def test_a_span_capture_has_the_prompt_fingerprint_of_the_same_call_captured_by_the_tee() -> None:
    (from_span,) = captures_from_otlp([export(span("a1", CURRENT))]).captures
    teed = {  # what the tee writes for messages.create(...) with the same arguments
        "schema_version": 1, "request_id": "r1", "captured_at": "2025-12-06T05:46:40+00:00",
        "source": {"service": "checkout"}, "api": "anthropic.messages",
        "request": {"model": "claude-sonnet-4-5", "max_tokens": 512, "temperature": 0.2,
                    "system": "Be brief.",
                    "messages": [{"role": "user", "content": QUESTION}]},
    }  # fmt: skip
    one, other = capture_from_dict(from_span), capture_from_dict(teed)
    assert normalize_request(one) == normalize_request(other)
    assert prompt_fingerprint(normalize_request(one)) == prompt_fingerprint(normalize_request(other))


def test_an_anthropic_span_without_max_tokens_is_rejected_never_guessed() -> None:
    no_cap = {k: v for k, v in CURRENT.items() if k != "gen_ai.request.max_tokens"}
    (rejected,) = captures_from_otlp([export(span("a1", no_cap))]).rejected
    assert "gen_ai.request.max_tokens" in rejected.reason


def test_the_command_writes_captures_and_rejects_and_a_bad_file_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spans = tmp_path / "spans.jsonl"  # the collector's file exporter: one export per line
    spans.write_text(json.dumps(export(span("a1", CURRENT))) + "\n" + json.dumps(export(span("c3", {
        **{k: v for k, v in CURRENT.items() if k != "gen_ai.input.messages"}}))) + "\n")  # fmt: skip
    out, rejects = tmp_path / "captures.jsonl", tmp_path / "rejects.jsonl"
    monkeypatch.setattr(
        sys,
        "argv",
        ["shadowlab", "otlp", "convert", str(spans), "--out", str(out), "--rejects", str(rejects)],
    )
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 0
    assert [json.loads(line)["request_id"] for line in out.read_text().splitlines()] == ["msg_01"]
    assert json.loads(rejects.read_text())["span"].endswith("/c3")
    assert "1 captures" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text('{"spans": []}')
    monkeypatch.setattr(
        sys, "argv", ["shadowlab", "otlp", "convert", str(tmp_path / "bad.json"), "--out", str(out)]
    )
    with pytest.raises(SystemExit) as failed:
        main()
    assert failed.value.code == 2
    expected = "expected an OTLP JSON trace export: an object with a resourceSpans list"
    assert capsys.readouterr().err.splitlines() == [f"error: OTLP file {tmp_path / 'bad.json'}: {expected}"]
    assert list(read_otlp_documents(spans.read_text()))[0]["resourceSpans"]
