"""`shadowlab demo` end to end: embedded, interrupted and rerun, and through the real Kafka and Postgres.

Both runs use seed 1. The verdict on other seeds (so that a lucky seed cannot carry the demo) is checked by
`bench/bench_demo_seeds.py`: seeds 1-10 in `make bench`, each MATCH or WRONG, a WRONG seed fails it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.slow


def _demo(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")} | env
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "demo", *args], env=full_env, cwd=cwd, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def _assert_matches_truth(output: str, out: Path) -> None:
    matched = "the verdict, its reasons, the health checks and the routing MATCH the truth"
    assert matched in output, output[-3000:]
    assert "WRONG" not in output.split("--- rerun ---")[-1]
    document = json.loads((out / "analysis.json").read_text())
    assert document["verdict"]["verdict"] == "dont_ship"
    assert {c["arm"]: c["status"] for c in document["verdict"]["candidates"]} == {
        "haiku": "fail",
        "fast": "fail",
    }
    reasons = " ".join(document["verdict"]["reasons"])
    assert "haiku fails the quality guardrail" in reasons and "fast fails the quality guardrail" in reasons
    health = {c["name"]: c["passed"] for c in document["health"]["checks"]}
    assert health["aa_noise_floor"] is True and all(health.values()), health
    assert "dont_ship" in (out / "report.html").read_text()
    assert (out / "routing.yaml").exists()


def test_demo_small_survives_ctrl_c_and_then_matches_the_truth(small_demo: Any) -> None:
    assert "4. shadow replay" in small_demo.output, small_demo.output[-3000:]
    assert small_demo.interrupted_returncode != 0
    assert small_demo.returncode == 0, small_demo.output[-3000:]
    _assert_matches_truth(small_demo.output, small_demo.folder)
    rejected = (small_demo.folder / "captures.jsonl.rejected.jsonl").read_text().splitlines()
    assert rejected and all(json.loads(line)["error"] for line in rejected)


@pytest.fixture
def demo_database(pg_database: str) -> Iterator[str]:
    """The demo makes `<db>_demo` beside the given database; drop it afterwards."""
    yield pg_database
    url = sa.engine.make_url(pg_database)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}_demo" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.postgres
@pytest.mark.kafka
def test_demo_real_small_through_kafka_and_postgres(
    demo_database: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = {"SHADOWLAB_DATABASE_URL": demo_database, "SHADOWLAB_KAFKA_BOOTSTRAP": kafka_bootstrap}
    run = _demo("--real", "--small", "--out", "real", env=env, cwd=tmp_path)
    output, _ = run.communicate(timeout=900)
    assert run.returncode == 0, output[-3000:]
    _assert_matches_truth(output, tmp_path / "real")
    assert "dropped 0, failed 0" in output
    demo_db = sa.engine.make_url(demo_database).set(
        database=f"{sa.engine.make_url(demo_database).database}_demo"
    )
    engine = sa.create_engine(demo_db)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM captured_requests")).scalar_one()
        topics = conn.execute(sa.text("SELECT DISTINCT source_topic FROM captured_requests")).scalars().all()
    engine.dispose()
    assert stored == 240
    assert len(topics) == 1 and topics[0].startswith("demo.captures.")
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.delete_topics([topics[0], f"{topics[0]}.dlq"])
    admin.close()
