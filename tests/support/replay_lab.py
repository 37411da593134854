"""The replayer end to end (tests/replayer, fixture `lab_factory`): a migrated database, the simulator and the
environment the CLI subprocesses get; captures to seed it with."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from shadowlab import migrate, store
from shadowlab.db import create_engine, session_factory, session_scope
from shadowlab.experiment import parse_spec
from shadowlab.models import CapturedRequest, Replay
from shadowlab.pricing import load_price_table
from simulator import Distribution, ModelProfile

CONTROL_MODEL, CANDIDATE_MODEL = "claude-haiku-4-5", "gpt-4o-mini"
# Fast answers (unlike `sim_profiles.FAST`: 429s say retry after 0.5 s, a stall lasts 2 s, up to 60 tokens).
LAB_FAST = ModelProfile(
    ttfb_ms=Distribution(median=2),
    ttft_ms=Distribution(median=5),
    tokens_per_s=20_000,
    output_tokens=Distribution(median=40, sigma=0.3, low=10, high=60),
    retry_after_s=0.5,
    stall_ms=2_000,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # the first capture's time


def capture(index: int, at: datetime, *, messages: list[Any] | None = None) -> dict[str, Any]:
    """Capture `r-{index:04d}` for `Lab.seed`: Anthropic Messages, own prompt unless `messages` is given."""
    request = {
        "model": CONTROL_MODEL,
        "max_tokens": 60,
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": messages
        if messages is not None
        else [
            {"role": "user", "content": f"Question {index}: what is {index} plus {index}? (r-{index:04d})"}
        ],
    }
    return {
        "request_id": f"r-{index:04d}", "captured_at": at, "service": "chat", "route": "/ask",
        "api": "anthropic.messages", "model": CONTROL_MODEL, "request": request,
    }  # fmt: skip


class Lab:
    """A migrated database, a simulator and the environment the CLI subprocesses get."""

    def __init__(self, url: str, sim_url: str, tmp: Path, cli: Callable[..., Any]) -> None:
        self.url, self.tmp, self._cli = url, tmp, cli
        self._spawned = 0
        self.engine = create_engine(url)
        migrate.upgrade(self.engine)
        self.env = {
            "SHADOWLAB_DATABASE_URL": url,
            "SHADOWLAB_ANTHROPIC_BASE_URL": sim_url,
            "SHADOWLAB_OPENAI_BASE_URL": f"{sim_url}/v1",
            "ANTHROPIC_API_KEY": "sk-ant-test-key",
            "OPENAI_API_KEY": "sk-test-key",
        }

    def cli(self, *args: str, ok: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done: subprocess.CompletedProcess[str] = self._cli(*args, env=self.env, cwd=self.tmp, timeout=timeout)
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    def popen(self, *args: str) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")} | self.env
        self._spawned += 1
        with (self.tmp / f"worker-{self._spawned}.log").open("w") as log:  # the child keeps its own copy
            return subprocess.Popen(
                [sys.executable, "-m", "cli.main", *args], env=env, cwd=self.tmp, text=True,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def seed(self, captures: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.insert(CapturedRequest), captures)

    def experiment(self, name: str, **overrides: Any) -> Path:
        spec: dict[str, Any] = {
            "name": name,
            "control": {"name": "control", "provider": "anthropic", "model": CONTROL_MODEL,
                        "extra_headers": {"x-sim-arm": "control"}},
            "candidates": [{"name": "cand", "provider": "openai", "model": CANDIDATE_MODEL,
                            "extra_headers": {"x-sim-arm": "cand"}}],
            "allowed_providers": ["anthropic", "openai"],
            "budget": {"usd": 100},
            "plan": {"primary_metric": "judge_score", "min_sample": 10, "max_sample": 100},
            "replay": {"max_attempts": 12, "backoff_base_s": 0.05, "backoff_max_s": 0.5, "lease_s": 30},
        }  # fmt: skip
        spec.update(overrides)
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        return path

    def create_and_start(self, name: str, **overrides: Any) -> None:
        """What `experiment create` + `experiment start` do, in process: two CLI start-ups (2-5 s each on a
        loaded machine) less per test; the commands themselves are tested in tests/shadowlab/."""
        spec = parse_spec(yaml.safe_load(self.experiment(name, **overrides).read_text()), f"{name}.yaml")
        prices = self.env.get("SHADOWLAB_PRICES_FILE")
        with session_scope(session_factory(self.engine)) as session:
            store.experiments.create(spec, session=session)
            store.experiments.start(name, load_price_table(Path(prices) if prices else None), session=session)

    def scalar(self, query: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def replay_keys(self) -> list[tuple[int, int]]:
        with self.engine.connect() as conn:
            return [(a, c) for a, c in conn.execute(sa.select(Replay.arm_id, Replay.captured_request_id))]
