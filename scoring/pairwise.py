"""Pairwise judging in both orders, combined per prompt; position bias = how often the two orders disagree.

Rows are stored in canonical terms: arm A = control, arm B = candidate, `order_shown` "ab" = control shown
first, `result` "a" / "b" / "tie" names the preferred arm (not the position). Per prompt, the candidate gets
1 when it wins in both orders, 0 when it loses in both, ½ otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from scoring.base import Winner

__all__ = [
    "Canonical",
    "Order",
    "PairwiseSummary",
    "candidate_points",
    "combine",
    "summarize",
    "to_canonical",
]

Canonical = Literal["a", "b", "tie"]
Order = Literal["ab", "ba"]
ORDERS: tuple[Order, Order] = ("ab", "ba")


def to_canonical(winner: Winner, order: Order) -> Canonical:
    """The preferred arm given the preferred position and the order shown."""
    if winner == "tie":
        return "tie"
    first_is_a = order == "ab"
    return "a" if (winner == "first") == first_is_a else "b"


def candidate_points(result: Canonical) -> float:
    """One order's outcome for the candidate (arm B): win 1, tie ½, loss 0."""
    return {"b": 1.0, "tie": 0.5, "a": 0.0}[result]


def combine(ab: Canonical, ba: Canonical) -> float:
    """Per-prompt preference for the candidate: 1 if it wins in both orders, 0 if it loses in both, else ½."""
    if ab == ba == "b":
        return 1.0
    if ab == ba == "a":
        return 0.0
    return 0.5


@dataclass(frozen=True)
class PairwiseSummary:
    """Order-averaged preference for the candidate, each single order's, and the order-disagreement rate."""

    n: int
    preference: float
    preference_ab: float  # control shown first
    preference_ba: float  # candidate shown first
    position_bias: float  # share of prompts where the two orders disagree


def summarize(pairs: Sequence[tuple[Canonical, Canonical]]) -> PairwiseSummary:
    """Summary over prompts judged in both orders (`(result_ab, result_ba)` each)."""
    n = len(pairs)
    if n == 0:
        raise ValueError("pairs: expected at least one prompt judged in both orders, found none")
    return PairwiseSummary(
        n=n,
        preference=sum(combine(ab, ba) for ab, ba in pairs) / n,
        preference_ab=sum(candidate_points(ab) for ab, _ in pairs) / n,
        preference_ba=sum(candidate_points(ba) for _, ba in pairs) / n,
        position_bias=sum(ab != ba for ab, ba in pairs) / n,
    )
