"""The verdict on fixed scenarios, end to end through `shadowlab analyze --from-csv --plan` (issue 27).

Each scenario is built so its estimates are exactly the stated effects (the noise is centred per arm), so
the verdict is decided by the rule and the effect size, not by the luck of a seed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
N = 2000
PLAN = {
    "primary_metric": "cost_usd",
    "primary_direction": "lower_is_better",
    "guardrails": [
        {"metric": "quality", "margin": 0.5, "relative": False, "direction": "higher_is_better"},
        {"metric": "error_rate", "margin": 0.02, "relative": False},
    ],
    "alpha": 0.05,
    "design": "sequential",
    "min_sample": 100,
    "max_sample": N,
    "arms": ["control", "cand", {"name": "control-aa", "role": "aa"}],
}


def _centred(rng: np.random.Generator, sd: float) -> np.ndarray:
    noise = rng.normal(0, sd, N)
    centred: np.ndarray = noise - noise.mean()
    return centred


def _write(tmp: Path, *, quality: float, cost: float, latency: float, aa_quality: float = 0.0) -> Path:
    rng = np.random.default_rng(5)
    base_quality = rng.normal(7.0, 1.0, N)
    base_cost = rng.gamma(4, 0.0005, N)
    base_latency = np.exp(rng.normal(7.0, 0.4, N))
    arms = {
        "control": (0.0, 1.0, 1.0),
        "cand": (quality, cost, latency),
        "control-aa": (aa_quality, 1.0, 1.0),
    }
    lines = ["request_id,arm,error,latency_ms,cost_usd,quality"]
    columns = {}
    for arm, (q_shift, c_factor, l_factor) in arms.items():
        q = base_quality + q_shift + (0 if arm == "control" else _centred(rng, 0.7))
        c = base_cost * c_factor * (1 if arm == "control" else np.exp(_centred(rng, 0.05)))
        lat = base_latency * l_factor * (1 if arm == "control" else np.exp(_centred(rng, 0.1)))
        columns[arm] = (q, c, lat)
    for i in range(N):
        for arm, (q, c, lat) in columns.items():
            lines.append(f"r{i},{arm},0,{lat[i]:.3f},{c[i]:.9f},{q[i]:.6f}")
    path = tmp / "exp.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("scenario", "effects", "verdict", "reason"),
    [
        (
            "equal quality, 70 % cheaper",
            {"quality": 0.0, "cost": 0.3, "latency": 1.0},
            "ship",
            "recommending cand",
        ),
        (
            "quality -1.0",
            {"quality": -1.0, "cost": 0.3, "latency": 1.0},
            "dont_ship",
            "cand fails the quality guardrail",
        ),
        (
            "quality -0.52 at the maximum sample",
            {"quality": -0.52, "cost": 0.3, "latency": 1.0},
            "inconclusive",
            "maximum of 2000 prompts is reached",
        ),
        (
            "70 % cheaper, latency 2 % slower (not in the plan)",
            {"quality": 0.0, "cost": 0.3, "latency": 1.02},
            "ship",
            "recommending cand",
        ),
        (
            "70 % cheaper, latency 30 % slower (not in the plan)",
            {"quality": 0.0, "cost": 0.3, "latency": 1.3},
            "dont_ship",
            "latency_ms (worse than its margin of +10%",
        ),
        (
            "the A/A arm disagrees with the control (health)",
            {"quality": 0.0, "cost": 0.3, "latency": 1.0, "aa_quality": 0.4},
            "invalid",
            "health check aa_noise_floor failed",
        ),
    ],  # fmt: skip
)
def test_verdict_on_a_fixed_scenario(
    tmp_path: Path, scenario: str, effects: dict[str, float], verdict: str, reason: str
) -> None:
    csv_path = _write(tmp_path, **effects)
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(yaml.safe_dump(PLAN), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "analyze", "--from-csv", str(csv_path),
         "--control", "control", "--plan", str(plan_path), "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["verdict"]["verdict"] == verdict, (scenario, document["verdict"]["reasons"])
    assert any(reason in r for r in document["verdict"]["reasons"]), document["verdict"]["reasons"]
