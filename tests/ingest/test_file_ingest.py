"""File mode end to end (CLI), secrets never reaching the database, and the pipeline under random input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.main import app
from ingest.dlq import FileDeadLetters
from ingest.messages import Message
from ingest.metrics import IngestMetrics
from ingest.pipeline import PipelineConfig
from ingest.runner import Runner
from ingest.sink import CaptureSink
from ingest.sources import FileSource
from shadowlab.db import create_engine
from shadowlab.errors import ConfigError
from shadowlab.fingerprint import body_fingerprint
from shadowlab.migrate import NotMigratedError
from shadowlab.request_shape import prompt_chars, user_turn
from tests.support.ingest import encode, make_capture

SECRETS = {
    "email": "jane.doe@example.com",
    "phone": "+1 415 555 2671",
    "card": "4111 1111 1111 1111",
    "anthropic": "sk-ant-api03-" + "Zx9" * 10,
    "openai": "sk-proj-" + "Qw8" * 10,
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "github": "ghp_" + "Ab1" * 12,
    "bearer": "eyJhbGciOiJIUzI1NiJ9.payload.signature0123",
}


def _secret_capture(i: int) -> dict[str, Any]:
    s = SECRETS
    capture: dict[str, Any] = make_capture(i, text=f"mail {s['email']} or call {s['phone']}")
    capture["request"]["system"] = [{"type": "text", "text": f"card on file {s['card']}"}]
    capture["request"]["messages"] += [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "deploy", "input": {"token": s["github"]}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": s["aws"]}]},
                {"type": "text", "text": f"Authorization: Bearer {s['bearer']} and {s['openai']}"},
            ],
        },
    ]
    capture["response"]["text"] = f"I used {s['anthropic']} for {s['email']}"
    return capture


def _ingest_file(url: str, path: Path, *args: str) -> Any:
    return CliRunner().invoke(
        app, ["ingest", "--source", "file", str(path), *args], env={"SHADOWLAB_DATABASE_URL": url}
    )


BAD_LINES = {
    "not_utf8": b"\xff\xfe{}",
    "not_json": b"{not json",
    "not_object": b"[1, 2]",
    "missing_field": json.dumps({"schema_version": 1, "request_id": "m"}).encode(),
    "unknown_schema_version": json.dumps({"schema_version": 2}).encode(),
}


def test_file_mode_stores_good_lines_and_rejects_bad_ones_with_reasons(
    sqlite_url: str, tmp_path: Path
) -> None:
    lines = [encode(make_capture(i)) for i in range(5)]
    lines[2:2] = list(BAD_LINES.values())
    lines.append(encode(make_capture(0)))  # a duplicate
    path = tmp_path / "captures.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n\n")

    result = _ingest_file(sqlite_url, path)

    assert result.exit_code == 0, result.output
    reasons = ", ".join(f"{code} 1" for code in sorted(BAD_LINES))
    assert f"stored 5, duplicates 1, skipped 0, rejected 5 ({reasons})" in result.output
    rejected = [
        json.loads(line) for line in (tmp_path / "captures.jsonl.rejected.jsonl").read_text().splitlines()
    ]
    assert [(r["line"], r["error"]) for r in rejected] == [(3 + n, code) for n, code in enumerate(BAD_LINES)]
    assert rejected[3]["detail"].endswith(": expected a value (required), found nothing")
    assert "raw_base64" in rejected[0] and rejected[1]["raw"] == "{not json"


@pytest.mark.parametrize("database", ["sqlite_url", pytest.param("pg_url", marks=pytest.mark.postgres)])
def test_each_stored_capture_carries_its_prompt_fingerprint(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url: str = request.getfixturevalue(database)
    texts = ["opening hours?", "opening hours?", "refund policy?"]
    path = tmp_path / "captures.jsonl"
    path.write_bytes(b"\n".join(encode(make_capture(i, text=t)) for i, t in enumerate(texts)))

    assert _ingest_file(url, path).exit_code == 0
    assert "stored 0, duplicates 3," in _ingest_file(url, path).output  # counted by the server's insert

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select api, request, prompt_fingerprint, prompt_chars, user_turn from captured_requests "
                "order by request_id"
            )
        ).all()
    engine.dispose()
    stored = [row.prompt_fingerprint for row in rows]
    bodies = [row.request if isinstance(row.request, dict) else json.loads(row.request) for row in rows]
    assert stored == [body_fingerprint(row.api, body) for row, body in zip(rows, bodies, strict=True)]
    assert stored[0] == stored[1] != stored[2]
    # the segment facts the analysis reads as columns: the body's text length and user turn
    assert [(row.prompt_chars, row.user_turn) for row in rows] == [
        (prompt_chars(body), user_turn(body)) for body in bodies
    ]
    assert all(row.prompt_chars >= len(text) for row, text in zip(rows, texts, strict=True))


def test_file_mode_refuses_a_missing_or_unmigrated_database(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("{}\n")
    missing = tmp_path / "missing.db"
    result = _ingest_file(f"sqlite:///{missing}", path)
    assert isinstance(result.exception, ConfigError)  # `main` turns it into one line and exit code 2
    assert result.exception.exit_code == 2
    assert "no such file" in str(result.exception) and not missing.exists()  # the check creates nothing
    empty = tmp_path / "empty.db"
    empty.touch()
    result = _ingest_file(f"sqlite:///{empty}", path)
    assert isinstance(result.exception, NotMigratedError)
    assert result.exception.exit_code == 2
    assert "not migrated (revision none, expected " in str(result.exception)


@pytest.mark.postgres
def test_no_secret_reaches_any_column(pg_url: str, tmp_path: Path) -> None:
    path = tmp_path / "secrets.jsonl"
    path.write_bytes(b"\n".join(encode(_secret_capture(i)) for i in range(20)))

    result = _ingest_file(pg_url, path)

    assert result.exit_code == 0, result.output
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        columns = [
            (table, column)
            for table, column in conn.execute(
                sa.text(
                    "select table_name, column_name from information_schema.columns "
                    "where table_schema = 'public' and data_type in ('text', 'character varying', 'jsonb')"
                )
            )
        ]
        dump = "\n".join(
            str(value)
            for table, column in columns
            for value in conn.execute(sa.text(f'select "{column}"::text from "{table}"')).scalars()
        )
        redaction = conn.execute(sa.text("select redaction from captured_requests limit 1")).scalar_one()
    engine.dispose()
    assert dump.count("[EMAIL_1]") == 40  # the user message and the response, 20 rows
    leaked = [name for name, secret in SECRETS.items() if secret in dump or secret.replace(" ", "") in dump]
    assert leaked == []
    assert redaction == {
        "counts": {
            "anthropic_key": 1,
            "aws_key": 1,
            "bearer_token": 1,
            "card": 1,
            "email": 2,
            "github_token": 1,
            "openai_key": 1,
            "phone": 1,
        }
    }


def _openai_capture(i: int, response: dict[str, Any]) -> dict[str, Any]:
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "x" * 400}]}
    return make_capture(i, api="openai.chat", request=body, response=response)


@pytest.mark.postgres
def test_an_answer_without_usage_is_stored_with_a_flagged_estimate_beside_it(
    pg_url: str, tmp_path: Path
) -> None:
    tool_calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    absent = {"text": "y" * 100, "tool_calls": tool_calls, "usage": None, "usage_status": "absent"}
    reported = {"text": "y" * 100, "usage": {"prompt_tokens": 110, "completion_tokens": 30}}
    not_captured = {"usage": None, "usage_status": "absent", "error": "stream cut"}  # no answer: no text
    path = tmp_path / "captures.jsonl"
    answers: tuple[dict[str, Any], ...] = (absent, reported, not_captured)
    captures = [_openai_capture(i, answer) for i, answer in enumerate(answers)]
    path.write_bytes(b"\n".join(map(encode, captures)))

    assert _ingest_file(pg_url, path).exit_code == 0

    engine = create_engine(pg_url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("select response from captured_requests order by request_id")).scalars()
        responses = list(stored)
    engine.dispose()
    # input: the body's compact JSON / 2 + 16 framing tokens; output: the text and the tool calls' JSON / 2
    body_chars = len(json.dumps(captures[0]["request"], separators=(",", ":")))
    answer_chars = 100 + len(json.dumps(tool_calls, separators=(",", ":")))
    assert responses[0]["usage"] is None and responses[0]["usage_status"] == "absent"
    assert responses[0]["usage_estimate"] == {
        "input_tokens": -(-body_chars // 2) + 16,
        "output_tokens": -(-answer_chars // 2),
        "method": "upper_bound_2_chars_per_token",
    }
    assert responses[1] == reported  # usage as reported: no estimate
    assert responses[2]["usage_estimate"]["output_tokens"] is None  # no answer captured: output unknown


# --- property: whatever arrives, each message is stored or dead-lettered, and nothing raises -------------
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_FIELDS = ["request_id", "captured_at", "source", "api", "request", "response", "schema_version"]


@st.composite
def _messages(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "mutated"]))
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "json":
        return json.dumps(draw(_json)).encode()
    capture: dict[str, Any] = {
        "schema_version": 1,
        "request_id": "r",
        "captured_at": "2025-01-31T12:00:00Z",
        "source": {"service": "s"},
        "api": "openai.chat",
        "request": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    }
    # Text that Postgres may refuse (NUL, lone surrogates) and ids too long for their column.
    capture["request"]["messages"][0]["content"] = draw(st.text(max_size=40))
    capture["request_id"] = draw(st.text(min_size=1, max_size=130))
    if draw(st.booleans()):
        capture[draw(st.sampled_from(_FIELDS))] = draw(_json)
    return json.dumps(capture).encode()


@pytest.mark.postgres
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(_messages(), min_size=1, max_size=8))
def test_every_message_is_stored_or_dead_lettered(pg_url: str, tmp_path: Path, values: list[bytes]) -> None:
    path = tmp_path / "random.jsonl"
    path.write_bytes(b"\n".join(values))
    source = FileSource(path)
    n = len(source.poll(1000, 0))  # blank lines are not messages
    source.close()
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("delete from captured_requests"))
    metrics = IngestMetrics()
    dead = FileDeadLetters(tmp_path / "rejected.jsonl")
    Runner(FileSource(path), CaptureSink(engine), dead, PipelineConfig(4096), metrics).run()
    engine.dispose()
    tally = metrics.tally
    assert tally.consumed == n
    assert tally.stored + tally.duplicates + sum(tally.rejected.values()) == n
    assert "internal_error" not in tally.rejected


def test_message_where_names_the_source() -> None:
    assert Message(b"", None, "t", 1, 5).where == "t/1/5"
    assert Message(b"", None, None, None, 7).where == "line 7"
