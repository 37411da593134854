"""Profile files, fault rates and the `simulate` command."""

from __future__ import annotations

import gc
import os
import random
import signal
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from shadowlab.errors import ConfigError
from simulator import FaultRates, ModelProfile, ProfileSet, Simulator, load_profiles, serve_forever
from simulator.command import register


def test_model_entries_override_the_default_and_match_globs(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text(
        "default: {tokens_per_s: 50, quality: 0.6}\n"
        "models:\n  'gpt-4o*': {quality: 0.9, ttft_ms: {median: 300}}\n"
        "  claude-haiku-4-5: {tokens_per_s: 150}\n"
    )
    profiles = load_profiles(path)
    assert profiles.for_model("gpt-4o-mini").quality == 0.9
    assert profiles.for_model("gpt-4o-mini").tokens_per_s == 50  # inherited from default
    assert profiles.for_model("gpt-4o-mini").ttft_ms.median == 300
    assert profiles.for_model("claude-haiku-4-5").tokens_per_s == 150
    assert profiles.for_model("other").quality == 0.6


def test_a_bad_profile_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "profiles.json"
    path.write_text('{"models": {"m": {"faults": {"rate_limit": 2}}}}')
    with pytest.raises(
        ConfigError, match=r"profiles.json: faults.rate_limit: Input should be less than or equal to 1"
    ):
        load_profiles(path)


def test_fault_rates_are_drawn_in_proportion() -> None:
    rates = FaultRates(rate_limit=0.2, stall=0.1)
    rng = random.Random(3)
    draws = [rates.draw(rng) for _ in range(5000)]
    assert 0.17 < draws.count("rate_limit") / 5000 < 0.23
    assert 0.08 < draws.count("stall") / 5000 < 0.12
    assert draws.count(None) + draws.count("rate_limit") + draws.count("stall") == 5000


def test_the_simulate_command_is_registered() -> None:
    app = typer.Typer()
    register(app)

    @app.command("other")
    def other() -> None:
        """Keeps typer in multi-command mode."""

    result = CliRunner().invoke(app, ["simulate", "--help"])
    assert result.exit_code == 0 and "--profile" in result.output and "--seed" in result.output
    assert ProfileSet().for_model("anything") == ProfileSet().default


def test_simulate_serves_with_its_start_up_heap_out_of_full_collections() -> None:
    """A full collection walking the simulator's start-up objects (14-23 ms CPU) would delay the deltas in
    flight past the times it promises; once it listens, a pass walks only what requests allocate."""
    in_sight: list[int] = []

    def announce(line: str) -> None:
        in_sight.append(len(gc.get_objects()))
        os.kill(os.getpid(), signal.SIGTERM)  # serve_forever stops on it

    serve_forever(Simulator(), "127.0.0.1", 0, announce)
    assert len(in_sight) == 1 and in_sight[0] < 1_000


def test_quality_by_keyword_makes_a_model_worse_on_hard_prompts_only() -> None:
    from simulator.profiles import mean_quality

    profile = ModelProfile(quality=0.8, quality_by_keyword={"refactor": 0.5, "diagnose": 0.55})
    assert mean_quality(profile, ("please", "refactor", "this")) == 0.5
    assert mean_quality(profile, ("diagnose", "refactor")) == 0.5  # the first keyword listed wins
    assert mean_quality(profile, ("explain", "this")) == 0.8
    assert mean_quality(ModelProfile(quality=0.7), ("refactor",)) == 0.7
