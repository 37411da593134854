"""`ingest --topic MISSING`: one clear error and exit 2, not an endless "Topic … not found" loop."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from shadowlab.broker import list_topics

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]
CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def test_a_missing_source_topic_is_one_error_and_creates_no_dead_letter_topic(
    pg_url: str, kafka_bootstrap: str, cli: CliRunner, tmp_path: Path
) -> None:
    missing = f"missing.{uuid.uuid4().hex[:10]}"
    env = {"SHADOWLAB_DATABASE_URL": pg_url, "SHADOWLAB_KAFKA_BOOTSTRAP": kafka_bootstrap}
    result = cli("ingest", "--topic", missing, "--idle-exit", "1", env=env, cwd=tmp_path, timeout=60)

    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert f"'{missing}' not found" in lines[0]
    assert f"SHADOWLAB_CAPTURE_TOPIC={missing} shadowlab topics create" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    topics = list_topics(kafka_bootstrap)
    assert missing not in topics
    assert f"{missing}.dlq" not in topics
