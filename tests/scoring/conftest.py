"""A migrated Postgres with one experiment whose two arms were replayed on the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from shadowlab.apis import normalize_request_body
from shadowlab.db import create_engine, session_factory, session_scope
from shadowlab.models import Arm, CapturedRequest, Experiment, Replay
from simulator import RunningSimulator, running_simulator
from tests.support.replayed_arms import N_REQUESTS, PROFILES, Seeded, sim_provider


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(seed=3, profiles=PROFILES) as running:
        yield running


async def _replay(sim: RunningSimulator, bodies: list[dict[str, object]], model: str) -> list[str]:
    provider = sim_provider(sim)
    try:
        results = await asyncio.gather(
            *(provider.complete(normalize_request_body("anthropic.messages", b), model=model) for b in bodies)
        )
    finally:
        await provider.aclose()
    assert all(r.ok for r in results)
    return [r.text for r in results]


@pytest.fixture
def seeded(pg_migrated: str, sim: RunningSimulator) -> Iterator[Seeded]:
    engine = create_engine(pg_migrated)
    factory = session_factory(engine)
    topics = [
        "sourdough bread starter",
        "python asyncio semaphores",
        "kafka consumer offsets",
        "tax on savings",
    ]
    bodies = [
        {
            "model": "prod-model",
            "max_tokens": 120,
            "messages": [
                {"role": "user", "content": f"Question {i}: explain {topics[i % 4]} briefly please"}
            ],
        }
        for i in range(N_REQUESTS)
    ]
    control_answers = asyncio.run(_replay(sim, bodies, "ctrl-model"))
    candidate_answers = asyncio.run(_replay(sim, bodies, "cand-model"))
    with session_scope(factory) as session:
        experiment = Experiment(name="exp", status="running", spec={})
        control = Arm(name="control", role="control", provider="anthropic", model="ctrl-model")
        candidate = Arm(name="candidate", role="candidate", provider="anthropic", model="cand-model")
        experiment.arms = [control, candidate]
        session.add(experiment)
        session.flush()
        for i, body in enumerate(bodies):
            capture = CapturedRequest(
                request_id=f"req-{i}",
                captured_at=datetime.now(UTC),
                service="svc",
                api="anthropic.messages",
                model="prod-model",
                request=body,
                response={"text": f"production answer {i}"},
            )
            session.add(capture)
            session.flush()
            for arm, text in ((control, control_answers[i]), (candidate, candidate_answers[i])):
                session.add(
                    Replay(
                        experiment_id=experiment.id,
                        arm_id=arm.id,
                        captured_request_id=capture.id,
                        status="ok",
                        answer_text=text,
                        tool_calls=[],
                        cost_usd=0.001,
                    )
                )
        ids = (experiment.id, control.id, candidate.id)
    try:
        yield Seeded(factory, *ids, sim)
    finally:
        engine.dispose()
