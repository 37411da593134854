"""`forget` sticks (issue 20, defect 8): a forgotten user's captures are not stored again when the topic is
read again (a new consumer group) or the file is ingested again, and their dead letters keep the reason,
never the text."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli.main import app
from ingest.forgetting import user_digest
from tests.support.ingest import encode, make_capture, unique
from tests.support.kafka_topics import delete_topic, read_records

FORGOTTEN = "u-forget-me"
Start = Callable[..., subprocess.Popen[bytes]]


def _lines() -> list[bytes]:
    """Four captures of the forgotten user, four of others, one malformed capture of each."""
    good = [encode(make_capture(i, source={"service": "s", "user_hash": FORGOTTEN if i % 2 else "u-keep"}))
            for i in range(8)]  # fmt: skip
    bad = [
        encode(make_capture(100, source={"service": "s", "user_hash": FORGOTTEN}, request={"model": 5})),
        encode(make_capture(101, source={"service": "s", "user_hash": "u-keep"}, request={"model": 5})),
    ]
    return [*good, *bad]


def _users(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select user_hash, count(*) from captured_requests group by 1"))
            return {user: int(n) for user, n in rows}
    finally:
        engine.dispose()


def _forget(url: str) -> str:
    result = CliRunner().invoke(app, ["forget", FORGOTTEN], env={"SHADOWLAB_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_file_ingested_again_after_forget_stores_nothing_of_the_user(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue("sqlite_url" if database == "sqlite" else "pg_url")
    path = tmp_path / "captures.jsonl"
    path.write_bytes(b"\n".join(_lines()) + b"\n")
    env = {"SHADOWLAB_DATABASE_URL": url}
    first = CliRunner().invoke(app, ["ingest", "--source", "file", str(path)], env=env)
    assert first.exit_code == 0, first.output
    assert _users(url) == {FORGOTTEN: 4, "u-keep": 4}

    assert "captured_requests 4" in _forget(url)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        listed = conn.execute(sa.text("select user_digest from forgotten_users")).scalars().all()
    engine.dispose()
    assert listed == [user_digest(FORGOTTEN)]  # the list holds a digest, not the user hash

    path.with_name(path.name + ".rejected.jsonl").unlink()
    again = CliRunner().invoke(app, ["ingest", "--source", "file", str(path)], env=env)
    assert again.exit_code == 0, again.output
    assert _users(url) == {"u-keep": 4}
    assert "forgotten 4" in again.output
    rejected = [
        json.loads(line) for line in path.with_name(path.name + ".rejected.jsonl").read_text().splitlines()
    ]
    assert [r["error"] for r in rejected] == ["wrong_type", "wrong_type"]
    forgotten_letter, other_letter = rejected
    assert "raw" not in forgotten_letter and FORGOTTEN not in json.dumps(forgotten_letter)
    assert "raw" in other_letter


@pytest.mark.kafka
@pytest.mark.postgres
def test_a_new_consumer_group_rereading_the_topic_stores_nothing_of_the_user(
    pg_url: str,
    kafka_bootstrap: str,
    kafka_topic: Callable[..., str],
    produce: Any,
    ingest_process: Start,
    tmp_path: Path,
) -> None:
    topic = kafka_topic(partitions=1)
    lines = _lines()
    produce(topic, lines)
    try:
        first = ingest_process(pg_url, "--topic", topic, "--group", unique("g"), "--idle-exit", "2",
                               log=tmp_path / "first")  # fmt: skip
        assert first.wait(60) == 0, (tmp_path / "first").read_text()[-2000:]
        assert _users(pg_url) == {FORGOTTEN: 4, "u-keep": 4}
        _forget(pg_url)

        second = ingest_process(pg_url, "--topic", topic, "--group", unique("g"), "--idle-exit", "2",
                                log=tmp_path / "second")  # fmt: skip
        assert second.wait(60) == 0, (tmp_path / "second").read_text()[-2000:]
        assert _users(pg_url) == {"u-keep": 4}
        letters = read_records(kafka_bootstrap, f"{topic}.dlq", 4)  # two per run
    finally:
        delete_topic(kafka_bootstrap, f"{topic}.dlq")
    by_run = [letters[:2], letters[2:]]
    assert [value for value, _ in by_run[0]] == lines[8:]  # before forget: both payloads kept
    (forgotten_value, forgotten_headers), (other_value, _) = by_run[1]
    assert forgotten_value == b"" and other_value == lines[9]
    assert forgotten_headers["shadowlab.error"] == "wrong_type"
    assert forgotten_headers["shadowlab.source"] == f"{topic}/0/8"
