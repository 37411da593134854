"""The `shadowlab` command: help, migrations on SQLite, the capture schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def test_help_lists_the_commands(tmp_path: Path, cli: Callable[..., Any]) -> None:
    result = cli("--help", env={}, cwd=tmp_path)
    assert result.returncode == 0
    for command in ("db", "schema", "doctor", "topics", "demo"):
        assert command in result.stdout


def test_db_upgrade_on_sqlite_then_current(tmp_path: Path, cli: Callable[..., Any]) -> None:
    env = {"SHADOWLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    assert cli("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    result = cli("db", "current", env=env, cwd=tmp_path)
    assert result.returncode == 0
    current, head = result.stdout.split()[1], result.stdout.split()[3]
    assert current == head != "base"


def test_schema_capture_prints_the_json_schema(tmp_path: Path, cli: Callable[..., Any]) -> None:
    result = cli("schema", "capture", env={}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert {"schema_version", "request_id", "captured_at", "source", "api", "request"} <= set(
        schema["required"]
    )
    assert set(schema["properties"]) >= {
        "schema_version",
        "request_id",
        "captured_at",
        "source",
        "api",
        "request",
        "response",
    }
