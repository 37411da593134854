"""Per-model behaviour of the simulator: timing distributions, speed, quality, tool use and fault rates.

A profile file (YAML or JSON) holds `default` and `models` (exact names or glob patterns such as `gpt-4o*`);
each model entry overrides only the fields it names. See docs/providers.md.
"""

from __future__ import annotations

import fnmatch
import json
import math
import random
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shadowlab.errors import ConfigError, yaml_problem

__all__ = [
    "FAULTS",
    "Distribution",
    "Fault",
    "FaultRates",
    "ModelProfile",
    "ProfileSet",
    "load_profiles",
    "mean_quality",
]

Fault = Literal["rate_limit", "overloaded", "server_error", "bad_request", "reset", "stream_error", "stall"]
FAULTS: tuple[Fault, ...] = (
    "rate_limit",
    "overloaded",
    "server_error",
    "bad_request",
    "reset",
    "stream_error",
    "stall",
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Distribution(_Frozen):
    """Log-normal around `median` (sigma 0 = constant), clipped to [`low`, `high`]."""

    median: float = Field(ge=0)
    sigma: float = Field(0.0, ge=0)
    low: float = Field(0.0, ge=0)
    high: float = Field(math.inf, ge=0)

    def sample(self, rng: random.Random) -> float:
        value = self.median * math.exp(rng.gauss(0.0, self.sigma)) if self.sigma else self.median
        return min(max(value, self.low), self.high)


class FaultRates(_Frozen):
    """Probability per request of each fault (drawn in order; their sum must stay ≤ 1)."""

    rate_limit: float = Field(0.0, ge=0, le=1)
    overloaded: float = Field(0.0, ge=0, le=1)
    server_error: float = Field(0.0, ge=0, le=1)
    bad_request: float = Field(0.0, ge=0, le=1)
    reset: float = Field(0.0, ge=0, le=1)
    stream_error: float = Field(0.0, ge=0, le=1)
    stall: float = Field(0.0, ge=0, le=1)

    def draw(self, rng: random.Random) -> Fault | None:
        point, edge = rng.random(), 0.0
        for fault in FAULTS:
            edge += getattr(self, fault)
            if point < edge:
                return fault
        return None


class ModelProfile(_Frozen):
    """How one model behaves. Times in milliseconds."""

    ttfb_ms: Distribution = Distribution(median=60, sigma=0.2)
    ttft_ms: Distribution = Distribution(median=450, sigma=0.35, low=80)
    tokens_per_s: float = Field(80.0, gt=0, description="Output speed after the first token.")
    chunk_tokens: int = Field(3, ge=1, description="Tokens per streamed delta.")
    output_tokens: Distribution = Distribution(median=120, sigma=0.5, low=5, high=2000)
    quality: float = Field(0.7, ge=0, le=1, description="Mean hidden quality of answers.")
    quality_sd: float = Field(0.1, ge=0)
    quality_by_keyword: dict[str, float] = Field(
        default_factory=dict,
        description="Mean quality when the prompt holds this word (lower case; the first match wins): "
        "how a model can be as good as another on easy routes and worse on hard ones.",
    )
    tool_call_rate: float = Field(
        0.8, ge=0, le=1, description="Chance of a tool call when tools are offered."
    )
    thinking_tokens: int = Field(
        60, ge=0, description="Thinking tokens when thinking/reasoning is requested."
    )
    cache_min_tokens: int = Field(1024, ge=0, description="Shortest prefix that prompt caching stores.")
    retry_after_s: float = Field(1.0, ge=0)
    stall_ms: float = Field(
        30_000,
        ge=0,
        description="Longest a stall: the connection stays silent until the client closes it or this passes.",
    )
    faults: FaultRates = FaultRates()
    repeat_identical: bool = Field(
        False,
        description="Answer every repeat of a request body identically, whichever capture it replays "
        "(a model served at temperature 0); by default each capture gets its own sampling.",
    )


def mean_quality(profile: ModelProfile, prompt_words: tuple[str, ...]) -> float:
    """The profile's mean quality for a prompt: a keyword override, else its base quality."""
    if profile.quality_by_keyword:
        words = set(prompt_words)
        for keyword, quality in profile.quality_by_keyword.items():
            if keyword in words:
                return quality
    return profile.quality


class ProfileSet(_Frozen):
    """The default profile and per-model overrides (exact names first, then the first matching glob)."""

    default: ModelProfile = ModelProfile()
    models: dict[str, ModelProfile] = Field(default_factory=dict)

    def for_model(self, model: str) -> ModelProfile:
        if model in self.models:
            return self.models[model]
        for pattern, profile in self.models.items():
            if fnmatch.fnmatchcase(model, pattern):
                return profile
        return self.default

    @classmethod
    def from_data(cls, data: Any, where: str = "profiles") -> ProfileSet:
        """Build from parsed YAML/JSON; model entries are merged onto `default`."""
        if not isinstance(data, dict):
            raise ConfigError(
                f"{where}: expected a mapping with `default` and `models`, found {type(data).__name__}"
            )
        try:
            default = ModelProfile.model_validate(data.get("default") or {})
            models = {
                name: ModelProfile.model_validate(_merge(default.model_dump(), entry or {}))
                for name, entry in (data.get("models") or {}).items()
            }
            return cls(default=default, models=models)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(part) for part in err["loc"])
            raise ConfigError(f"{where}: {field}: {err['msg']}") from None


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return merged


def load_profiles(path: Path) -> ProfileSet:
    """Read a profile file (`.json`, else YAML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--profile {path}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise ConfigError(f"--profile {path}: not valid {kind} ({yaml_problem(exc)})") from None
    return ProfileSet.from_data(data, where=str(path))
