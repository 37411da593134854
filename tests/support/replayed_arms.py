"""The scoring tests' experiment: simulator profiles for its two arms, its size, the handle to it, a provider.

The fixtures that build it (`sim`, `seeded`) are in tests/scoring/conftest.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from shadowlab.providers import Provider, ProviderConfig, create_provider
from simulator import Distribution, ModelProfile, ProfileSet, RunningSimulator

FAST = ModelProfile(
    ttfb_ms=Distribution(median=1),
    ttft_ms=Distribution(median=2),
    tokens_per_s=50_000,
    output_tokens=Distribution(median=30, sigma=0.2, low=10, high=60),
)
PROFILES = ProfileSet(
    default=FAST,
    models={
        "ctrl-model": FAST.model_copy(update={"quality": 0.55}),
        "cand-model": FAST.model_copy(update={"quality": 0.85}),
    },
)
N_REQUESTS = 24


@dataclass(frozen=True)
class Seeded:
    factory: sessionmaker[Session]
    experiment_id: int
    control_id: int
    candidate_id: int
    sim: RunningSimulator


def sim_provider(sim: RunningSimulator, headers: dict[str, str] | None = None) -> Provider:
    """An Anthropic provider on the running simulator."""
    return create_provider(
        "anthropic",
        ProviderConfig(base_url=sim.base_url, api_key=SecretStr("k"), extra_headers=headers or {}),
    )
