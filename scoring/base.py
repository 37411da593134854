"""The scorer contract: what a scorer sees, what it returns, and how its version is derived.

Every scorer has a `name` and a `version`; rows record both, so a changed judge prompt, rubric or model is a
new version whose scores never mix with the old ones. The version is a hash of everything that changes a
verdict (`version_of`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from shadowlab.errors import ConfigError, ShadowlabError

__all__ = [
    "FailureKind",
    "PairResult",
    "PairScorer",
    "PairSubject",
    "PointScorer",
    "ScoreResult",
    "ScorerConfigError",
    "ScoringError",
    "Subject",
    "Winner",
    "version_of",
]

Winner = Literal["first", "second", "tie"]
# unparseable: the judge answered but not in the expected form (recorded as a failed score)
# provider: the judge call failed after retries (not recorded: the next run retries it)
# budget: the budget could not cover the call (not recorded: the next run retries it)
FailureKind = Literal["unparseable", "provider", "budget"]


class ScoringError(ShadowlabError):
    """Scoring cannot proceed (unknown experiment, no control arm, ...)."""


class ScorerConfigError(ConfigError):
    """The experiment spec's `scoring` section is malformed; the message names the field."""


def version_of(*parts: Any) -> str:
    """A short stable hash of what defines a scorer (prompt, rubric, model, parameters)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Subject:
    """One answer to score: the prompt as text, the answer, its tool calls and an optional reference."""

    prompt: str
    answer: str
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    reference: str | None = None
    tools: tuple[Mapping[str, Any], ...] = ()  # the request's tools: {name, input_schema}


@dataclass(frozen=True)
class PairSubject:
    """Two answers to the same prompt in the order they are shown."""

    prompt: str
    first: str
    second: str
    reference: str | None = None


@dataclass(frozen=True)
class ScoreResult:
    """A score (None when not applicable or failed; `failure` says which) with rationale and details."""

    value: float | None
    rationale: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    failure: FailureKind | None = None
    cost_usd: float = 0.0

    @property
    def storable(self) -> bool:
        """Transient failures are not stored, so the next run retries them."""
        return self.failure not in ("provider", "budget")


@dataclass(frozen=True)
class PairResult:
    """Which of two shown answers won (None on failure)."""

    winner: Winner | None
    rationale: str | None = None
    failure: FailureKind | None = None
    detail: str | None = None
    cost_usd: float = 0.0


class PointScorer(Protocol):
    """Scores one answer (LLM judge pointwise, deterministic checks)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...

    async def score(self, subject: Subject) -> ScoreResult: ...


class PairScorer(Protocol):
    """Compares two answers shown in a given order (LLM judge pairwise)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...

    async def compare(self, subject: PairSubject) -> PairResult: ...
