"""Sections of analysis documents as the engine writes them, for tests of what reads them."""

from __future__ import annotations

from typing import Any

# A routing section: one segment routed to the candidate, one kept on the control, one too small to judge.
ROUTING: dict[str, Any] = {
    "dimension": "route",
    "control": "ctrl",
    "saving": {
        "per_request_usd": 0.000291346,
        "ci_low": 0.000218528,
        "ci_high": 0.000364164,
        "relative": {"estimate": -0.1828},
        "n": 1000,
        "method": "cross-fitted",
    },  # fmt: skip
    "mix_checks": [
        {
            "name": "guardrail:quality",
            "status": "pass",
            "estimate": -0.011,
            "ci_low": -0.085,
            "ci_high": 0.063,
        },
        {"name": "guardrail:error_rate", "status": "pass", "estimate": 0.0, "ci_low": 0.0, "ci_high": 0.0},
    ],
    "segments": [
        {
            "segment": "support-bot/faq",
            "n_requests": 285,
            "share": 0.285,
            "arm": "cand",
            "status": "routed",
            "reason": "cand is the cheapest arm non-inferior (Holm-adjusted p = 0.000872)",
            "candidates": [{"arm": "cand", "qualifies": True, "p_adjusted": 0.000872, "checks": []}],
        },
        {
            "segment": "code/refactor",
            "n_requests": 162,
            "share": 0.162,
            "arm": "ctrl",
            "status": "control",
            "reason": "no candidate holds every condition here: cand fails the quality guardrail",
            "candidates": [
                {
                    "arm": "cand",
                    "qualifies": False,
                    "p_adjusted": 1.0,
                    "checks": [{"name": "guardrail:quality", "status": "fail"}],
                }
            ],
        },
        {
            "segment": "search/summarise",
            "n_requests": 27,
            "share": 0.027,
            "arm": "ctrl",
            "status": "too_small",
            "reason": "too small to judge",
            "candidates": [],
        },
    ],  # fmt: skip
}
