"""Acceptance (issue 24): OpenAI's Responses API end to end, in this process. The real openai SDK's
`responses.create` and `responses.stream` through the tee against the simulator → captures that validate →
`ingest --source file` → a replay on a Chat Completions (control), a Responses and an Anthropic arm →
`analyze`; the Responses arm's cost is exact per token class (uncached input, cached input, output with
its reasoning) at gpt-5's prices, computed here by hand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import shadowlab_tee as tee
from cli.main import app
from replayer.run import ReplayOptions, run_replay
from shadowlab import store
from shadowlab.apis import usage_from_capture
from shadowlab.config import load_settings
from shadowlab.db import create_engine, session_factory, session_scope
from shadowlab.experiment import parse_spec
from shadowlab.models import Arm, Replay
from shadowlab.pricing import load_price_table
from simulator import Distribution, ModelProfile, ProfileSet, RunningSimulator, running_simulator
from tests.support.tee_captures import delivered

TEXT_TOKENS, REASONING_TOKENS = 40, 24
OUTPUT_TOKENS = TEXT_TOKENS + REASONING_TOKENS  # as OpenAI counts them: output includes reasoning
PROFILE = ModelProfile(
    ttfb_ms=Distribution(median=2),
    ttft_ms=Distribution(median=5),
    tokens_per_s=20_000,
    output_tokens=Distribution(median=TEXT_TOKENS, low=TEXT_TOKENS, high=TEXT_TOKENS),
    thinking_tokens=REASONING_TOKENS,
    cache_min_tokens=100,
)
# Long enough to be cached by the simulator (as by OpenAI: a repeated prefix of 1,024 tokens or more).
INSTRUCTIONS = "You are a careful analyst of database workloads. " * 40
# 15 questions, each asked with `create` and with `stream`: 30 prompts, routing's minimum segment size (with
# fewer, `analyze` of an experiment with a plan fails on routing: reported).
QUESTIONS = [
    "Which index suits range scans?",
    *(f"How should table t{i} index column c{i}?" for i in range(14)),
]
N = 2 * len(QUESTIONS)
# gpt-5 in shadowlab/prices.json, per million tokens: input 1.25, cached input 0.125, output 10 (reasoning
# tokens are output tokens and have no rate of their own).
GPT5_INPUT, GPT5_CACHED, GPT5_OUTPUT = 1.25e-6, 0.125e-6, 10e-6
SPEC: dict[str, Any] = {
    "name": "responses-e2e",
    # The control is the cheapest arm: no candidate is routed to, so `analyze` does not cross-fit a routing on
    # halves of 15 prompts, below routing's minimum segment (30), which fails today (reported).
    "control": {"name": "chat", "provider": "openai", "model": "gpt-4o-mini"},
    "candidates": [
        {"name": "responses", "provider": "openai_responses", "model": "gpt-5"},
        {"name": "claude", "provider": "anthropic", "model": "claude-haiku-4-5"},
    ],
    "allowed_providers": ["openai_responses", "openai", "anthropic"],
    "budget": {"usd": 5},
    "plan": {"primary_metric": "cost_usd", "primary_direction": "lower_is_better", "min_sample": 3,
             "max_sample": 100},
    "replay": {"max_attempts": 2, "backoff_base_s": 0.05, "backoff_max_s": 0.2},
}  # fmt: skip


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(seed=11, profiles=ProfileSet(default=PROFILE)) as running:
        yield running


def teed_calls(sim: RunningSimulator, out: Path) -> list[Any]:
    """Production traffic: `responses.create` and `responses.stream` through the tee; the capture file."""
    sink = tee.MemorySink()
    with openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-test-key", max_retries=0) as sdk:
        client = tee.wrap(sdk, sink, "support-bot")
        call: dict[str, Any] = {
            "model": "gpt-5",
            "instructions": INSTRUCTIONS,
            "reasoning": {"effort": "low"},
        }
        for question in QUESTIONS:
            client.responses.create(input=question, max_output_tokens=400, **call)
            with client.responses.stream(input=question + " (streamed)", **call) as stream:
                stream.get_final_response()
        captures = delivered(sink, 2 * len(QUESTIONS))  # each validated by the capture schema's parser
    sink.close(timeout=5)
    out.write_bytes(b"".join(value + b"\n" for _, value in sink.records()))
    return captures


def test_responses_traffic_is_teed_ingested_replayed_on_three_apis_and_analysed(
    sim: RunningSimulator, pg_migrated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    captures = teed_calls(sim, tmp_path / "captures.jsonl")
    assert {c.api for c in captures} == {"openai.responses"}
    usages = [usage_from_capture(c) for c in captures]
    assert all(u is not None and u.reasoning_tokens == REASONING_TOKENS for u in usages)
    assert any(u is not None and u.cache_read_input_tokens > 0 for u in usages)

    env = {
        "SHADOWLAB_DATABASE_URL": pg_migrated, "SHADOWLAB_OPENAI_BASE_URL": sim.openai_base_url,
        "SHADOWLAB_ANTHROPIC_BASE_URL": sim.base_url, "OPENAI_API_KEY": "sk-test-key",
        "ANTHROPIC_API_KEY": "sk-ant-test-key",
    }  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def cli(*args: str) -> str:
        done = CliRunner().invoke(app, list(args))
        assert done.exit_code == 0, (args, done.output, done.exception)
        return done.output

    assert f"stored {N}" in cli("ingest", "--source", "file", str(tmp_path / "captures.jsonl"))
    # `experiment create/start` and `replay` in this process, on an engine disposed here (the commands leave
    # theirs to the end of their process).
    engine = create_engine(pg_migrated)
    try:
        factory = session_factory(engine)
        with session_scope(factory) as session:
            store.experiments.create(parse_spec(SPEC, "exp.yaml"), session=session)
            store.experiments.start(SPEC["name"], load_price_table(None), session=session)
        options = ReplayOptions(SPEC["name"], workers=1, mode="backfill", progress=False)
        assert run_replay(factory, load_settings(), options).done == N
    finally:
        engine.dispose()

    replays = replay_rows(pg_migrated)
    assert {arm: [r["status"] for r in rows] for arm, rows in replays.items()} == {
        arm: ["ok"] * N for arm in ("responses", "chat", "claude")
    }
    responses = replays["responses"]
    assert all(
        r["output_tokens"] == OUTPUT_TOKENS and r["reasoning_tokens"] == REASONING_TOKENS for r in responses
    )
    cached = [r for r in responses if r["cache_read_input_tokens"] > 0]
    assert cached, responses  # the instructions repeat: after the first call they are read from the cache
    for r in responses:
        by_hand = (
            r["input_tokens"] * GPT5_INPUT
            + r["cache_read_input_tokens"] * GPT5_CACHED
            + OUTPUT_TOKENS * GPT5_OUTPUT
        )
        assert r["cost_usd"] == pytest.approx(by_hand, rel=1e-12, abs=0)
    # By hand: 116 uncached + 384 cached input tokens (the instructions, cached since production's calls),
    # 64 output tokens of which 24 reasoning: 116 × 1.25 + 384 × 0.125 + 64 × 10 = 145 + 48 + 640 = 833 µ$.
    hand = [r for r in responses if r["input_tokens"] == 116]
    assert hand and {
        (r["cache_read_input_tokens"], r["output_tokens"], r["reasoning_tokens"]) for r in hand
    } == {(384, 64, 24)}
    assert all(r["cost_usd"] == pytest.approx(833e-6, rel=1e-12, abs=0) for r in hand)
    assert all(r["cost_usd"] > 0 and r["answer_text"] for rows in replays.values() for r in rows)

    document = json.loads(cli("analyze", "responses-e2e", "--json"))
    assert document["n_requests"] == N and document["arms"] == ["chat", "responses", "claude"]
    costs = {c["candidate"]: c for c in document["comparisons"] if c["metric"] == "cost_usd"}
    for arm in ("responses", "claude"):  # the analysis reads the replays' costs: their mean, per arm
        mean = sum(r["cost_usd"] for r in replays[arm]) / N
        assert costs[arm]["candidate_value"] == pytest.approx(mean, rel=1e-9)
    verdict = document["verdict"]
    assert verdict["verdict"] == "dont_ship"  # both candidates cost more than gpt-4o-mini on Chat
    assert {c["arm"]: c["status"] for c in verdict["candidates"]} == {"responses": "fail", "claude": "fail"}


def replay_rows(url: str) -> dict[str, list[dict[str, Any]]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            columns = (
                Arm.name, Replay.status, Replay.answer_text, Replay.input_tokens,
                Replay.cache_read_input_tokens,
                Replay.output_tokens, Replay.reasoning_tokens, Replay.cost_usd,
            )  # fmt: skip
            rows = connection.execute(
                sa.select(*columns).join(Arm, Arm.id == Replay.arm_id).order_by(Replay.id)
            )
            out: dict[str, list[dict[str, Any]]] = {}
            for row in rows:
                out.setdefault(row.name, []).append(dict(row._mapping))
            return out
    finally:
        engine.dispose()
