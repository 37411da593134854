"""The hostile corpus (tests/support/hostile_corpus.py) through ingest: every message ends as a dead letter
with its machine reason, between valid captures that are stored; no traceback, nothing wedged. From a file
(SQLite) and from the real broker into Postgres (dead-letter topic)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.support.hostile_corpus import CORPUS
from tests.support.ingest import count_rows, encode, make_capture, unique
from tests.support.kafka_topics import delete_topic, read_records

Start = Callable[..., subprocess.Popen[bytes]]


def _interleaved() -> list[bytes]:
    """A valid capture before the corpus, one after every ten hostile messages, and one at the end."""
    lines = [encode(make_capture(0))]
    for i, (_, raw, _) in enumerate(CORPUS):
        lines.append(raw)
        if i % 10 == 9:
            lines.append(encode(make_capture(i + 1)))
    lines.append(encode(make_capture(10_000)))
    return lines


def test_every_hostile_line_is_rejected_with_its_reason_and_the_valid_ones_are_stored(
    sqlite_url: str, tmp_path: Path
) -> None:
    assert len(CORPUS) >= 50
    lines = _interleaved()
    path = tmp_path / "hostile.jsonl"
    # The file is line-delimited: a hostile message holding a newline is written escaped in its JSON.
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
    result = CliRunner().invoke(app, ["ingest", "--source", "file", str(path)],
                                env={"SHADOWLAB_DATABASE_URL": sqlite_url})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    rejected = [
        json.loads(line) for line in path.with_name(path.name + ".rejected.jsonl").read_text().splitlines()
    ]
    # Blank and whitespace-only lines are skipped by the file reader (they are not messages there).
    expected = [code for name, raw, code in CORPUS if raw.strip()]
    assert [r["error"] for r in rejected] == expected
    assert all(r["detail"] for r in rejected)
    valid = len(lines) - len(CORPUS)
    assert count_rows(sqlite_url) == valid


@pytest.mark.kafka
@pytest.mark.postgres
def test_the_corpus_through_the_broker_dead_letters_each_message_with_its_reason(
    pg_url: str, kafka_bootstrap: str, kafka_topic: Callable[..., str], produce: Any,
    ingest_process: Start, tmp_path: Path,
) -> None:  # fmt: skip
    topic = kafka_topic(partitions=1)
    lines = _interleaved()
    produce(topic, lines)
    log = tmp_path / "ingest.log"
    try:
        proc = ingest_process(pg_url, "--topic", topic, "--group", unique("g"), "--idle-exit", "2", log=log)
        assert proc.wait(120) == 0, log.read_text()[-2000:]
        letters = read_records(kafka_bootstrap, f"{topic}.dlq", len(CORPUS))
    finally:
        delete_topic(kafka_bootstrap, f"{topic}.dlq")
    assert "Traceback" not in log.read_text()
    assert [headers["shadowlab.error"] for _, headers in letters] == [code for _, _, code in CORPUS]
    assert count_rows(pg_url) == len(lines) - len(CORPUS)
