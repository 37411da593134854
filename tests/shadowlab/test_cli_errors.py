"""Bad configuration gets one clear line on stderr and a non-zero exit code, never a traceback.

The single bad inputs are the corpus of tests/support/bad_inputs/ (tests/shadowlab/test_bad_inputs.py,
in process); here are the cases that need a subprocess each: a database in every state across commands,
nothing created on the way, doctor against the broker, help.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.bad_inputs import SPEC

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


# --- a database that is missing, empty or behind the code ------------------------------------------------

# The commands named in issue 19, one subprocess each (the CLI takes ~1 s to start, so not every command:
# each way into the database is here: the CLI's own, the replayer's, scoring's, analysis's, ingest's).
DATABASE_COMMANDS = [
    ("doctor",),
    ("experiment", "list"),
    ("experiment", "create", "spec.yaml"),
    ("experiment", "show", "x"),
    ("replay", "x"),
    ("score", "x"),
    ("analyze", "x"),
]
MORE_DATABASE_COMMANDS = [
    ("agreement", "x", "--scorer", "judge"),
    ("gate", "x"),
    ("retention", "--older-than", "30d"),
    ("db", "current"),
]


def _head() -> str:
    from shadowlab import migrate
    from shadowlab.db import create_engine

    head = migrate.head_revision(create_engine("sqlite://"))
    assert head is not None
    return head


@pytest.mark.parametrize("command", DATABASE_COMMANDS + MORE_DATABASE_COMMANDS, ids=" ".join)
def test_a_missing_sqlite_file_is_an_error_and_is_not_created(
    command: tuple[str, ...], tmp_path: Path, cli: CliRunner
) -> None:
    """The default URL is sqlite:///shadowlab.db in the working folder; only `db upgrade` may make it."""
    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    result = cli(*command, env={}, cwd=tmp_path)
    missing = tmp_path / "shadowlab.db"
    assert_one_line_error(
        result, 2, f"database sqlite:///shadowlab.db: no such file {missing}", "run `shadowlab db upgrade`"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_db_upgrade_creates_the_sqlite_file(tmp_path: Path, cli: CliRunner) -> None:
    result = cli("db", "upgrade", env={}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "shadowlab.db").is_file()
    assert cli("experiment", "list", env={}, cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("command", DATABASE_COMMANDS, ids=" ".join)
def test_an_empty_sqlite_file_is_not_migrated(
    command: tuple[str, ...], tmp_path: Path, cli: CliRunner
) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    (tmp_path / "empty.db").touch()
    result = cli(*command, env={"SHADOWLAB_DATABASE_URL": "sqlite:///empty.db"}, cwd=tmp_path)
    assert_one_line_error(
        result, 2, f"database sqlite:///empty.db: not migrated (revision none, expected {_head()}): "
        "run `shadowlab db upgrade`"
    )  # fmt: skip
    assert not (tmp_path / "shadowlab.db").exists()


@pytest.mark.postgres
def test_an_empty_postgres_database_is_not_migrated(pg_database: str, tmp_path: Path, cli: CliRunner) -> None:
    import sqlalchemy as sa

    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    shown = sa.engine.make_url(pg_database).render_as_string(hide_password=True)
    for command in DATABASE_COMMANDS:
        result = cli(*command, env={"SHADOWLAB_DATABASE_URL": pg_database}, cwd=tmp_path)
        assert_one_line_error(
            result, 2, f"database {shown}: not migrated (revision none, expected {_head()})"
        )
        assert "shadowlab:shadowlab@" not in result.stderr  # the password stays hidden
    engine = sa.create_engine(pg_database)
    try:
        assert sa.inspect(engine).get_table_names() == []  # nothing was created on the way
    finally:
        engine.dispose()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_a_database_behind_the_code_names_both_revisions(tmp_path: Path, cli: CliRunner) -> None:
    env = {"SHADOWLAB_DATABASE_URL": "sqlite:///old.db"}
    assert cli("db", "upgrade", "--revision", "0004_judge_spend", env=env, cwd=tmp_path).returncode == 0
    result = cli("experiment", "list", env=env, cwd=tmp_path)
    assert_one_line_error(result, 2, f"not migrated (revision 0004_judge_spend, expected {_head()})")


def test_a_database_newer_than_the_code_says_so(tmp_path: Path, cli: CliRunner) -> None:
    import sqlalchemy as sa

    from shadowlab import migrate
    from shadowlab.db import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'new.db'}")
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("update alembic_version set version_num = '0099_from_the_future'"))
    engine.dispose()
    result = cli("experiment", "list", env={"SHADOWLAB_DATABASE_URL": "sqlite:///new.db"}, cwd=tmp_path)
    assert_one_line_error(
        result, 2, "revision 0099_from_the_future is newer than this shadowlab knows", "upgrade shadowlab"
    )


# --- doctor: revision, prices, topics ---------------------------------------------------------------------


@pytest.mark.kafka
def test_doctor_reports_the_revision_the_prices_and_the_topics(
    tmp_path: Path, cli: CliRunner, kafka_bootstrap: str, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(prefix="doctor")
    env = {
        "SHADOWLAB_DATABASE_URL": "sqlite:///ok.db",
        "SHADOWLAB_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SHADOWLAB_CAPTURE_TOPIC": topic,
    }
    assert cli("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    result = cli("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"database ok: sqlite:///ok.db (revision {_head()}, the head)",
        result.stdout.splitlines()[1],
        f"kafka ok: {kafka_bootstrap}: {topic} present, {topic}.dlq missing (ingest creates it)",
    ]
    assert result.stdout.splitlines()[1].startswith("prices ok: the shipped prices.json (")


@pytest.mark.kafka
def test_doctor_names_a_missing_capture_topic_and_creates_none(
    tmp_path: Path, cli: CliRunner, kafka_bootstrap: str
) -> None:
    from shadowlab.broker import list_topics

    topic = f"doctor.missing.{uuid.uuid4().hex[:8]}"
    env = {
        "SHADOWLAB_DATABASE_URL": "sqlite:///ok.db",
        "SHADOWLAB_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SHADOWLAB_CAPTURE_TOPIC": topic,
    }
    assert cli("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    result = cli("doctor", env=env, cwd=tmp_path)
    assert_one_line_error(
        result, 2, f"SHADOWLAB_CAPTURE_TOPIC: topic {topic} does not exist on {kafka_bootstrap}"
    )
    assert not {topic, f"{topic}.dlq"} & set(list_topics(kafka_bootstrap))


# --- analyze's own inputs, and help -----------------------------------------------------------------------

CSV = "request_id,arm,judge_score,latency_ms\n" + "".join(
    f"r{i},ctrl,{5 + i % 3},{300 + i}\nr{i},cand,{6 + i % 2},{280 + i}\n" for i in range(30)
)


@pytest.mark.parametrize(
    ("plan", "missing"),
    [
        ("primary_metric: cost\n", "cost"),
        ("primary_metric: judge_score\nguardrails:\n  - {metric: ttft_p95, margin: 0.1}\n", "ttft_p95"),
    ],
)
def test_a_plan_metric_the_data_lack_is_one_error(
    plan: str, missing: str, tmp_path: Path, cli: CliRunner
) -> None:
    (tmp_path / "data.csv").write_text(CSV, encoding="utf-8")
    (tmp_path / "plan.yaml").write_text(plan, encoding="utf-8")
    args = ("analyze", "--from-csv", "data.csv", "--control", "ctrl", "--plan", "plan.yaml")
    result = cli(*args, env={}, cwd=tmp_path)
    assert_one_line_error(
        result, 2, f"plan plan.yaml: plan metric {missing!r}: expected one of the analysed metrics "
        "(judge_score, latency_ms)"
    )  # fmt: skip
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "plan.yaml"]


@pytest.mark.parametrize("command", [(), ("replay",), ("analyze",), ("ingest",), ("dashboard",)], ids=repr)
def test_flags_take_no_value_in_help(command: tuple[str, ...], tmp_path: Path, cli: CliRunner) -> None:
    result = cli(*command, "--help", env={}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "<bool>" not in result.stdout
    help_line = next(line for line in result.stdout.splitlines() if line.strip().startswith("--help"))
    assert help_line.split()[:2] == ["--help", "Show"]
