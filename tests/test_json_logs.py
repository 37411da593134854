"""`SHADOWLAB_LOG_FORMAT=json`: every long-running stage writes its stderr as one JSON object per line.

Replay and score run as the CLI would (subprocesses, SQLite, the simulator over HTTP); the dashboard's
server logging is checked in a process of its own, with a record of Streamlit's and one of the app's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shadowlab import migrate, store
from shadowlab.db import create_engine, session_factory, session_scope
from shadowlab.experiment import parse_spec
from shadowlab.models import CapturedRequest
from shadowlab.pricing import load_price_table
from simulator import running_simulator

CliRunner = Callable[..., subprocess.CompletedProcess[str]]
N = 6
SPEC: dict[str, Any] = {
    "name": "logs",
    "control": {"name": "control", "provider": "anthropic", "model": "claude-haiku-4-5"},
    "candidates": [{"name": "cand", "provider": "anthropic", "model": "claude-sonnet-4-5"}],
    "allowed_providers": ["anthropic"],
    "budget": {"usd": 10},
    "plan": {"primary_metric": "judge_score"},
    "scoring": {"judges": [{"name": "quality", "kind": "pointwise", "model": "sim-judge"}]},
}
# The simulator's judge has no public price: a LiteLLM-format price file adds one.
PRICES = {"sim-judge": {"input_cost_per_token": 1e-6, "output_cost_per_token": 5e-6,
                        "litellm_provider": "anthropic", "mode": "chat"}}  # fmt: skip


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every non-empty stderr line, parsed as JSON (fails on the first line that is not)."""
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
    return records


def _capture(i: int) -> dict[str, Any]:
    request = {"model": "claude-haiku-4-5", "max_tokens": 40,
               "messages": [{"role": "user", "content": f"Question {i}: what is {i} plus {i}?"}]}  # fmt: skip
    return {"request_id": f"r-{i}", "captured_at": datetime(2026, 1, 1, tzinfo=UTC), "service": "chat",
            "api": "anthropic.messages", "model": "claude-haiku-4-5", "request": request}  # fmt: skip


def test_replay_and_score_log_json_lines(tmp_path: Path, cli: CliRunner) -> None:
    database = tmp_path / "logs.db"
    engine = create_engine(f"sqlite:///{database}")
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(CapturedRequest), [_capture(i) for i in range(N)])
    (tmp_path / "prices.json").write_text(json.dumps(PRICES), encoding="utf-8")
    # What `experiment create` + `experiment start` do, in process (two CLI start-ups less; those commands
    # are tested in tests/shadowlab/): the logs checked here are replay's and score's.
    with session_scope(session_factory(engine)) as session:
        store.experiments.create(parse_spec(SPEC, "spec"), session=session)
        store.experiments.start("logs", load_price_table(tmp_path / "prices.json"), session=session)
    engine.dispose()
    with running_simulator(seed=5) as sim:
        env = {
            "SHADOWLAB_DATABASE_URL": f"sqlite:///{database}",
            "SHADOWLAB_ANTHROPIC_BASE_URL": sim.base_url,
            "SHADOWLAB_PRICES_FILE": str(tmp_path / "prices.json"),
            "ANTHROPIC_API_KEY": "sk-ant-secret-key-1",
            "SHADOWLAB_LOG_FORMAT": "json",
        }
        replay = cli("replay", "logs", "--backfill", env=env, cwd=tmp_path)
        score = cli("score", "logs", env=env, cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    assert score.returncode == 0, score.stderr

    replayed = json_lines(replay.stderr)
    ended = [r for r in replayed if r["logger"] == "replayer"]
    assert [(r["experiment"], r["done"], r["status"]) for r in ended] == [("logs", N, "running")]
    progress = [r for r in replayed if r["logger"] == "shadowlab.progress"]
    assert progress and progress[-1]["done"] == N and progress[-1]["progress"] == "replay logs"

    scored = json_lines(score.stderr)
    (summary,) = [r for r in scored if r["logger"] == "scoring"]
    assert (summary["scorer"], summary["stored"], summary["failed"]) == ("quality", 2 * N, 0)
    assert any(r["logger"] == "shadowlab.progress" for r in scored)
    assert "sk-ant-secret-key-1" not in replay.stderr + score.stderr


def test_a_failing_command_s_error_line_stays_plain_under_json_logs(tmp_path: Path, cli: CliRunner) -> None:
    """The `error:` line is for the person at the terminal, so it stays plain text (README, configuration)."""
    database = tmp_path / "logs.db"
    engine = create_engine(f"sqlite:///{database}")
    migrate.upgrade(engine)
    engine.dispose()
    env = {"SHADOWLAB_DATABASE_URL": f"sqlite:///{database}", "SHADOWLAB_LOG_FORMAT": "json"}
    done = cli("score", "missing", env=env, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        "error: experiment 'missing': not found (create it with `shadowlab experiment create`)"
    ]


DASHBOARD_PROCESS = """
import logging, sys
from streamlit import logger as streamlit_logger
from dashboard.server_logs import configure_server_logging

early = streamlit_logger.get_logger("streamlit.early")   # made before the configuration
configure_server_logging("INFO", sys.argv[1])
configure_server_logging("INFO", sys.argv[1])              # the app's next run: configured once
early.info("before")
streamlit_logger.get_logger("streamlit.runtime.late").warning("after")
logging.getLogger("dashboard.views").info("a page")
"""


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_the_dashboard_server_logs_in_the_configured_format(fmt: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", DASHBOARD_PROCESS, fmt], cwd=Path(__file__).resolve().parents[1],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    if fmt == "text":
        assert all(not line.startswith("{") for line in done.stderr.splitlines())
        assert "before" in done.stderr and "a page" in done.stderr
        return
    records = json_lines(done.stderr)
    assert [(r["logger"], r["message"]) for r in records] == [
        ("dashboard", "dashboard server logging as json"),
        ("streamlit.early", "before"),
        ("streamlit.runtime.late", "after"),
        ("dashboard.views", "a page"),
    ]
