"""The demo's built-in truth: simulator profiles, prices and the experiment, and the verdict they imply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from demo.traffic import ROUTES

# Words of the hard routes' prompts (see traffic.ROUTES); the haiku-like model is worse only there.
HARD_WORDS = {"diagnose": "support-bot/troubleshoot", "refactor": "code-assist/refactor"}
QUALITY_MARGIN = 0.5  # judge points (1-10) a candidate may lose and still ship


@dataclass(frozen=True)
class ArmTruth:
    name: str
    model: str
    provider: str
    quality: float
    hard_quality: float
    ttft_ms: float
    tokens_per_s: float
    input_usd_per_mtok: float
    output_usd_per_mtok: float


CONTROL = ArmTruth("control", "sim-sonnet", "anthropic", 0.80, 0.80, 420, 900, 3.0, 15.0)
CANDIDATES = (
    ArmTruth("haiku", "sim-haiku", "anthropic", 0.80, 0.40, 260, 1400, 1.0, 5.0),
    ArmTruth("fast", "sim-flash", "openai", 0.62, 0.62, 120, 2500, 0.30, 2.5),
)
JUDGE_MODEL = "sim-judge"


def hard_share() -> float:
    total = sum(r.weight for r in ROUTES)
    return sum(r.weight for r in ROUTES if r.difficulty == "hard") / total


def expected_quality_delta(arm: ArmTruth) -> float:
    """True difference in mean judge score (points) against the control, from the route mix."""
    share = hard_share()
    mean = (1 - share) * arm.quality + share * arm.hard_quality
    control = (1 - share) * CONTROL.quality + share * CONTROL.hard_quality
    return 9.0 * (mean - control)  # the simulated judge scores 1 + 9 × quality


def expected_status(arm: ArmTruth) -> str:
    """How the pre-registered plan should judge this candidate (`pass` / `fail`), given the truth built in."""
    cheaper = arm.output_usd_per_mtok < CONTROL.output_usd_per_mtok
    if expected_quality_delta(arm) < -QUALITY_MARGIN or not cheaper:
        return "fail"
    return "pass"


def expected_verdict() -> str:
    """The experiment's verdict: ship when some candidate passes, else don't."""
    return "ship" if any(expected_status(arm) == "pass" for arm in CANDIDATES) else "dont_ship"


def expected_recommendation() -> str | None:
    """The candidate the verdict should recommend: the cheapest passing one, if any."""
    passing = [arm for arm in CANDIDATES if expected_status(arm) == "pass"]
    return min(passing, key=lambda arm: arm.output_usd_per_mtok).name if passing else None


def expected_checks(arm: ArmTruth) -> dict[str, str]:
    """The plan's conditions whose outcome the truth fixes, and how each must come out: the reasons.

    Cost (the primary metric) follows the prices; quality follows the quality margin; TTFT p95 follows the
    profiles (every candidate here is faster); no arm injects faults, so the error-rate guardrail passes. A
    passing candidate must also pass the no-harm scan; a failing one may fail it too (its answers lose the
    pairwise preference), so it is not part of the truth.
    """
    cheaper = arm.output_usd_per_mtok < CONTROL.output_usd_per_mtok
    checks = {
        "primary:cost_usd": "pass" if cheaper else "fail",
        "guardrail:quality": "pass" if expected_quality_delta(arm) >= -QUALITY_MARGIN else "fail",
        "guardrail:ttft_p95": "pass" if arm.ttft_ms <= CONTROL.ttft_ms * 1.25 else "fail",
        "guardrail:error_rate": "pass",
    }
    if expected_status(arm) == "pass":
        checks["no_harm"] = "pass"
    return checks


def profiles() -> dict[str, Any]:
    models: dict[str, Any] = {}
    for arm in (CONTROL, *CANDIDATES):
        models[arm.model] = {
            "ttft_ms": {"median": arm.ttft_ms, "sigma": 0.3, "low": 20},
            "ttfb_ms": {"median": 15, "sigma": 0.2},
            "tokens_per_s": arm.tokens_per_s,
            "chunk_tokens": 8,
            "output_tokens": {"median": 90, "sigma": 0.4, "low": 10, "high": 300},
            "quality": arm.quality,
            "quality_sd": 0.08,
            "quality_by_keyword": dict.fromkeys(HARD_WORDS, arm.hard_quality),
        }
    models[JUDGE_MODEL] = {"ttft_ms": {"median": 10}, "ttfb_ms": {"median": 5}, "tokens_per_s": 5000}
    return {"default": {"ttft_ms": {"median": 50}}, "models": models}


def prices() -> dict[str, Any]:
    table: dict[str, Any] = {}
    for arm in (CONTROL, *CANDIDATES):
        table[arm.model] = {
            "litellm_provider": arm.provider,
            "mode": "chat",
            "input_cost_per_token": arm.input_usd_per_mtok / 1e6,
            "output_cost_per_token": arm.output_usd_per_mtok / 1e6,
            "cache_read_input_token_cost": arm.input_usd_per_mtok / 1e7,
            "cache_creation_input_token_cost": arm.input_usd_per_mtok * 1.25 / 1e6,
        }
    free = {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0}
    table[JUDGE_MODEL] = {"litellm_provider": "anthropic", "mode": "chat", **free}
    return table


def _arm(arm: ArmTruth) -> dict[str, Any]:
    return {
        "name": arm.name,
        "provider": arm.provider,
        "model": arm.model,
        "extra_headers": {"x-sim-arm": arm.name},
    }


def experiment(name: str, n_requests: int) -> dict[str, Any]:
    return {
        "name": name,
        "description": "Can we move production from sim-sonnet to a cheaper model? (shadowlab demo)",
        "control": _arm(CONTROL),
        "candidates": [_arm(arm) for arm in CANDIDATES],
        "aa": {**_arm(CONTROL), "name": "control-aa", "extra_headers": {"x-sim-arm": "control-aa"}},
        "traffic": {"mode": "backfill", "environments": ["production"]},
        "allowed_providers": ["anthropic", "openai"],
        "budget": {"usd": 25.0},
        "plan": {
            "primary_metric": "cost_usd",
            "primary_direction": "lower_is_better",
            "guardrails": [
                {
                    "metric": "quality",
                    "margin": QUALITY_MARGIN,
                    "relative": False,
                    "direction": "higher_is_better",
                },
                {"metric": "error_rate", "margin": 0.02, "relative": False, "direction": "lower_is_better"},
                {"metric": "ttft_p95", "margin": 0.25, "relative": True, "direction": "lower_is_better"},
            ],
            "alpha": 0.05,
            "design": "sequential",
            "min_sample": min(100, n_requests),
            "max_sample": max(n_requests, 100),
            "planned_sample": n_requests,
        },
        "replay": {"lease_s": 60, "stall_timeout_s": 10, "timeout_s": 60, "backoff_base_s": 0.2},
        "scoring": {
            "judges": [
                {"name": "quality", "kind": "pointwise", "provider": "anthropic", "model": JUDGE_MODEL},
                {"name": "preference", "kind": "pairwise", "provider": "anthropic", "model": JUDGE_MODEL},
            ]
        },
    }


def expected_route(segment: str) -> tuple[str, ...]:
    """Arms the routing may pick for a `service/route` segment: the haiku-like model only on easy routes."""
    hard = {f"{r.service}/{r.route}" for r in ROUTES if r.difficulty == "hard"}
    return (CONTROL.name,) if segment in hard else (CANDIDATES[0].name, CONTROL.name)
