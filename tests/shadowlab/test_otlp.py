"""OpenTelemetry GenAI spans (OTLP/HTTP JSON) as captures: the current conventions, OpenLLMetry's attributes,
spans without prompt content rejected with the reason, other spans ignored; the command's one error line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cli.main import main
from shadowlab.apis import normalize_request, usage_from_capture
from shadowlab.capture import capture_from_dict
from shadowlab.fingerprint import prompt_fingerprint
from shadowlab.otlp import captures_from_otlp, read_otlp_documents
from shadowlab.usage import Usage
from tests.support.otlp_spans import CURRENT, OPENLLMETRY, QUESTION, export, span


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
    assert rejected.code == "no_prompt_content"


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
    assert "gen_ai.request.max_tokens" in rejected.reason and rejected.code == "no_max_tokens"


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
    reject = json.loads(rejects.read_text())
    assert reject["span"].endswith("/c3") and reject["code"] == "no_prompt_content"
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


def test_cached_and_reasoning_tokens_are_taken_apart_as_each_api_reports_them() -> None:
    cache = {"gen_ai.usage.input_tokens": 1100, "gen_ai.usage.cache_read.input_tokens": 1000,
             "gen_ai.usage.cache_creation.input_tokens": 60, "gen_ai.usage.output_tokens": 9,
             "gen_ai.usage.reasoning.output_tokens": 4}  # fmt: skip
    openai_cache = {"gen_ai.usage.input_tokens": 1200, "gen_ai.usage.cache_read_input_tokens": 1024,
                    "gen_ai.usage.output_tokens": 300, "gen_ai.usage.reasoning_tokens": 256}  # fmt: skip
    anthropic, openai = captures_from_otlp(
        [export(span("a1", CURRENT | cache), span("b2", OPENLLMETRY | openai_cache))]
    ).captures
    assert usage_from_capture(capture_from_dict(anthropic)) == Usage(
        input_tokens=40, cache_read_input_tokens=1000, cache_creation_input_tokens=60, output_tokens=9,
        reasoning_tokens=4,
    )  # fmt: skip
    assert usage_from_capture(capture_from_dict(openai)) == Usage(
        input_tokens=176, cache_read_input_tokens=1024, output_tokens=300, reasoning_tokens=256
    )
    older = CURRENT | {"gen_ai.usage.input_tokens": 40, "gen_ai.usage.cache_read_input_tokens": 1000}
    (not_included,) = captures_from_otlp([export(span("c3", older))]).captures  # a total without its parts
    assert not_included["response"]["usage"] == {
        "input_tokens": 40, "output_tokens": 9, "cache_read_input_tokens": 1000,
    }  # fmt: skip
