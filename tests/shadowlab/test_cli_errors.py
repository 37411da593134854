"""Bad configuration gets one clear line on stderr and a non-zero exit code, never a traceback."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("postgres//no-scheme", "SHADOWLAB_DATABASE_URL"),
        ("mysql://u:p@localhost/db", "expected driver postgresql+psycopg or sqlite"),
        ("postgresql+psycopg://u:p@localhost", "expected a database name"),
    ],
)
def test_malformed_database_url(url: str, needle: str, tmp_path: Path, cli: CliRunner) -> None:
    result = cli("db", "upgrade", env={"SHADOWLAB_DATABASE_URL": url}, cwd=tmp_path)
    assert_one_line_error(result, 2, needle)


def test_unreachable_database_hides_the_password(tmp_path: Path, cli: CliRunner) -> None:
    url = "postgresql+psycopg://shadowlab:s3cret-pw@127.0.0.1:1/shadowlab"
    result = cli("db", "upgrade", env={"SHADOWLAB_DATABASE_URL": url}, cwd=tmp_path)
    assert_one_line_error(result, 3, "database unreachable", "127.0.0.1:1")
    assert "s3cret-pw" not in result.stderr + result.stdout


def test_unreachable_kafka(tmp_path: Path, cli: CliRunner) -> None:
    env = {
        "SHADOWLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "SHADOWLAB_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "SHADOWLAB_CONNECT_TIMEOUT_S": "1",
    }
    result = cli("doctor", env=env, cwd=tmp_path)
    assert_one_line_error(result, 3, "Kafka unreachable at 127.0.0.1:1")


@pytest.mark.parametrize("bootstrap", ["localhost", "host:notaport", "host:99999", ":9092"])
def test_malformed_kafka_bootstrap(bootstrap: str, tmp_path: Path, cli: CliRunner) -> None:
    result = cli("doctor", env={"SHADOWLAB_KAFKA_BOOTSTRAP": bootstrap}, cwd=tmp_path)
    assert_one_line_error(result, 2, "SHADOWLAB_KAFKA_BOOTSTRAP", "expected host:port")


def test_wrong_type_names_the_variable(tmp_path: Path, cli: CliRunner) -> None:
    result = cli("doctor", env={"SHADOWLAB_CONNECT_TIMEOUT_S": "soon"}, cwd=tmp_path)
    assert_one_line_error(result, 2, "SHADOWLAB_CONNECT_TIMEOUT_S")
