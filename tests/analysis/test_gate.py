"""`shadowlab gate EXPERIMENT --fail-on …`: the exit code of every verdict, run as the CLI runs in CI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analysis.cli import parse_fail_on
from tests.support.analysis_seed import PLAN, seed_experiment
from tests.support.postgres import fresh_database

# 300 prompts cannot show a p95 within ±10 %, so the gate's plan allows +40 % and the slow arm is 2.5× slower.
GUARDRAILS = [
    {"metric": "ttft_p95", "margin": 0.4, "relative": True, "direction": "lower_is_better"},
    {"metric": "cost", "margin": 0.05, "relative": True, "direction": "lower_is_better"},
]
# experiment → (seeding arguments, expected verdict)
EXPERIMENTS: dict[str, tuple[dict[str, Any], str]] = {
    "ships": ({"n": 300, "shift": 0.8}, "ship"),
    "slow-ttft": ({"n": 300, "shift": 0.8, "ttft_factor": 2.5}, "dont_ship"),
    "too-early": ({"n": 60, "shift": 0.8}, "keep_running"),
    "no-answer": ({"n": 150, "shift": 0.0, "plan_change": {"max_sample": 150}}, "inconclusive"),
    "broken-aa": ({"n": 300, "shift": 0.8, "aa_shift": 1.5}, "invalid"),  # the A/A copy differs: data problem
}


@pytest.fixture(scope="module")
def seeded(postgres_url: str) -> Any:
    with fresh_database(postgres_url) as url:
        for i, (experiment, (args, _)) in enumerate(EXPERIMENTS.items()):
            kwargs = dict(args)
            plan = {**PLAN, "guardrails": GUARDRAILS, **kwargs.pop("plan_change", {})}
            seed_experiment(
                url, experiment, plan=plan, seed=i, prefix=f"{experiment}-", failure_rate=0.003, **kwargs
            )
        yield url


@pytest.mark.postgres
@pytest.mark.parametrize("experiment", list(EXPERIMENTS))
def test_gate_exit_code_for_each_verdict(
    experiment: str, seeded: str, cli: Callable[..., Any], tmp_path: Path
) -> None:
    expected = EXPERIMENTS[experiment][1]
    done = cli("gate", experiment, "--fail-on", "dont_ship,inconclusive",
               env={"SHADOWLAB_DATABASE_URL": seeded}, cwd=tmp_path)  # fmt: skip
    assert f"verdict {expected}" in done.stdout, done.stdout + done.stderr
    blocked = expected in ("dont_ship", "inconclusive")
    assert done.returncode == (1 if blocked else 0), done.stdout + done.stderr
    reasons = [line for line in done.stdout.splitlines() if line.startswith("  - ")]
    assert reasons, done.stdout
    if blocked:
        assert "gate blocked" in done.stderr
    if expected == "dont_ship":
        assert any("ttft_p95 guardrail" in line for line in reasons)
    if expected == "invalid":
        assert any("health check aa_noise_floor failed" in line for line in reasons)


@pytest.mark.postgres
def test_gate_default_blocks_everything_but_ship(
    seeded: str, cli: Callable[..., Any], tmp_path: Path
) -> None:
    env = {"SHADOWLAB_DATABASE_URL": seeded}
    assert cli("gate", "too-early", env=env, cwd=tmp_path).returncode == 1
    invalid = cli("gate", "broken-aa", env=env, cwd=tmp_path)
    assert invalid.returncode == 1 and "verdict invalid is in --fail-on" in invalid.stderr
    shipped = cli("gate", "ships", "--json", env=env, cwd=tmp_path)
    assert shipped.returncode == 0 and '"gate": "passed"' in shipped.stdout


@pytest.mark.postgres
def test_gate_invalid_input_exits_2(seeded: str, cli: Callable[..., Any], tmp_path: Path) -> None:
    env = {"SHADOWLAB_DATABASE_URL": seeded}
    unknown = cli("gate", "missing-experiment", env=env, cwd=tmp_path)
    assert unknown.returncode == 2 and "experiment 'missing-experiment': not found" in unknown.stderr
    bad = cli("gate", "ships", "--fail-on", "ship,maybe", env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "--fail-on: expected verdicts among" in bad.stderr


def test_parse_fail_on() -> None:
    assert parse_fail_on("dont_ship, inconclusive") == ("dont_ship", "inconclusive")
    with pytest.raises(ValueError, match="found maybe"):
        parse_fail_on("maybe")


def test_a_bad_fail_on_is_refused_before_the_statistics_are_imported() -> None:
    """`gate EXP --fail-on typo` fails at once: while the experiment's reads are running (the prefetch), the
    statistics' imports would cost a second of CPU before the one error line."""
    code = (
        "import sys\nfrom analysis.cli import parse_fail_on\ntry:\n    parse_fail_on('maybe')\n"
        "except ValueError:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('scipy', 'analysis.stats'))))"
    )
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]", imported.stdout
