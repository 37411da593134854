"""`retention` and `forget` delete captures and exactly the rows derived from them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli.main import app
from ingest.governance import parse_age
from shadowlab.db import create_engine
from shadowlab.errors import ConfigError
from shadowlab.models import Arm, CapturedRequest, Experiment, Label, Replay, Score

NOW = datetime.now(UTC)


def _seed(url: str) -> None:
    """Four captures (two old, two of user `u-x`), each with a replay per arm and a score per replay."""
    engine = create_engine(url)
    with engine.begin() as conn:
        exp = conn.execute(sa.insert(Experiment).values(name="e").returning(Experiment.id)).scalar_one()
        arms = [
            conn.execute(
                sa.insert(Arm)
                .values(experiment_id=exp, name=n, role=r, provider="sim", model="m")
                .returning(Arm.id)
            ).scalar_one()
            for n, r in (("a", "control"), ("b", "candidate"))
        ]
        specs = [("old-1", 40, "u-x"), ("old-2", 31, "u-y"), ("new-1", 1, "u-x"), ("new-2", 0, "u-y")]
        for request_id, days, user in specs:
            capture = conn.execute(
                sa.insert(CapturedRequest)
                .values(
                    request_id=request_id,
                    captured_at=NOW - timedelta(days=days),
                    service="s",
                    user_hash=user,
                    api="openai.chat",
                    request={},
                    redaction={},
                )
                .returning(CapturedRequest.id)
            ).scalar_one()
            for arm in arms:
                replay = conn.execute(
                    sa.insert(Replay)
                    .values(experiment_id=exp, arm_id=arm, captured_request_id=capture, status="ok")
                    .returning(Replay.id)
                ).scalar_one()
                conn.execute(sa.insert(Score).values(replay_id=replay, scorer_name="j", scorer_version="1"))
            conn.execute(
                sa.insert(Label).values(
                    experiment_id=exp,
                    captured_request_id=capture,
                    arm_a_id=arms[0],
                    arm_b_id=arms[1],
                    labeler="h",
                    order_shown="ab",
                    result="a",
                )
            )
    engine.dispose()


def _remaining(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    with engine.connect() as conn:
        ids = sorted(conn.execute(sa.select(CapturedRequest.request_id)).scalars())
        counts = {
            t: conn.execute(sa.text(f"select count(*) from {t}")).scalar_one() for t in ("replays", "scores")
        }
    engine.dispose()
    return {"captures": ids, **counts}


def _run(url: str, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"SHADOWLAB_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    return result.output.strip()


@pytest.mark.postgres
def test_retention_deletes_old_captures_and_their_derived_rows(pg_url: str) -> None:
    _seed(pg_url)
    out = _run(pg_url, "retention", "--older-than", "30d")
    assert out == (
        "deleted 12 rows: captured_requests 2, replays 4, scores 4, preferences 0, labels 2, "
        "work_leases 0, budget_reservations 0"
    )
    assert _remaining(pg_url) == {"captures": ["new-1", "new-2"], "replays": 4, "scores": 4}


@pytest.mark.postgres
def test_forget_deletes_one_users_captures_and_their_derived_rows(pg_url: str) -> None:
    _seed(pg_url)
    assert _run(pg_url, "forget", "u-x").startswith(
        "deleted 12 rows: captured_requests 2, replays 4, scores 4"
    )
    assert _remaining(pg_url) == {"captures": ["new-2", "old-2"], "replays": 4, "scores": 4}
    assert _run(pg_url, "forget", "u-x").startswith("deleted 0 rows")


def test_retention_and_forget_on_sqlite(sqlite_url: str) -> None:
    _seed(sqlite_url)
    assert _run(sqlite_url, "retention", "--older-than", "35d").startswith(
        "deleted 6 rows: captured_requests 1"
    )
    assert _run(sqlite_url, "forget", "u-y").startswith("deleted 12 rows: captured_requests 2")
    assert _remaining(sqlite_url) == {"captures": ["new-1"], "replays": 2, "scores": 2}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(weeks=2)),
        (" 90m ", timedelta(minutes=90)),
    ],
)
def test_parse_age(text: str, expected: timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["30", "0d", "-1d", "1y", "d"])
def test_parse_age_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ConfigError, match="expected a positive age like 30d"):
        parse_age(text)
