"""The experiment spec (YAML): arms, traffic, limits, allowlist, budget, pre-registered plan (DESIGN §5).

`load_spec` turns YAML into a frozen `ExperimentSpec`; every error names the field (`candidates[0].model`)
and what was expected. `check_providers` is what creating an experiment adds (every provider registered and
on the allowlist), and `check_priced` (every arm's and judge's model priced); `check_startable` is what
`shadowlab experiment start` enforces again on the stored spec: every provider on the allowlist, every model
priced by the table of the moment.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shadowlab.apis import Api
from shadowlab.errors import ConfigError, yaml_problem
from shadowlab.pricing import PriceTable, UnknownModelPriceError

# fmt: off
__all__ = [
    "ArmSpec", "BudgetSpec", "ExperimentSpec", "ExperimentSpecError", "Guardrail", "LimitSpec",
    "OutageSettings", "PlanSpec", "ReplaySettings", "TrafficSpec", "check_priced", "check_providers",
    "check_startable", "load_spec", "parse_spec",
]
# fmt: on

ArmRole = Literal["control", "candidate", "aa"]
# The provider of a judge in `scoring.judges` that names none (scoring.judge.JudgeSpec uses it too).
JUDGE_DEFAULT_PROVIDER = "anthropic"
TrafficMode = Literal["backfill", "live"]
Design = Literal["sequential", "fixed"]
MetricDirection = Literal["higher_is_better", "lower_is_better"]
ArmParam = Literal[
    "temperature",
    "top_p",
    "top_k",
    "max_output_tokens",
    "stop_sequences",
    "thinking_budget_tokens",
    "reasoning_effort",
]


class ExperimentSpecError(ConfigError):
    """The experiment YAML is invalid; the message names the field and what was expected."""


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ArmSpec(_Spec):
    """Provider + model + parameters + prompt template version (a system-prompt override)."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    params: dict[ArmParam, Any] = Field(default_factory=dict)
    prompt_template_version: str | None = None
    system: str | None = Field(None, description="Replaces the captured system prompt when set.")
    extra_headers: dict[str, str] = Field(default_factory=dict)


class TrafficSpec(_Spec):
    """Which captures to replay. Filters are lists of accepted values; empty means any."""

    mode: TrafficMode = "backfill"
    services: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    apis: tuple[Api, ...] = ()
    sample_rate: float = Field(1.0, gt=0, le=1)
    since: datetime | None = None
    until: datetime | None = None
    max_requests: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _range(self) -> TrafficSpec:
        if self.since and self.until and self.until <= self.since:
            raise ValueError(f"until: expected a time after since ({self.since.isoformat()})")
        return self


class LimitSpec(_Spec):
    """Limits of one provider+model, held by all workers together over a sliding window of `window_s`."""

    provider: str
    model: str
    concurrency: int | None = Field(None, gt=0)
    rpm: int | None = Field(None, gt=0, description="Requests per window")
    input_tpm: int | None = Field(None, gt=0, description="Input tokens per window")
    output_tpm: int | None = Field(None, gt=0, description="Output tokens per window")
    window_s: float = Field(60.0, gt=0, description="Window length; 60 s in production, shorter in tests")

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model}"


class BudgetSpec(_Spec):
    usd: float = Field(gt=0, description="Replays and judging together")
    judge_usd_per_request: float = Field(0.0, ge=0, description="Reserved per request for the judge")


class Guardrail(_Spec):
    metric: str
    margin: float = Field(ge=0)
    relative: bool = Field(True, description="Margin as a fraction of control (else absolute)")
    direction: MetricDirection = "lower_is_better"


class PlanSpec(_Spec):
    """The pre-registered analysis plan (DESIGN §7)."""

    primary_metric: str
    primary_direction: MetricDirection = "higher_is_better"
    guardrails: tuple[Guardrail, ...] = ()
    alpha: float = Field(0.05, gt=0, lt=1)
    design: Design = "sequential"
    min_sample: int = Field(100, gt=0)
    max_sample: int = Field(10_000, gt=0)
    planned_sample: int | None = Field(
        None, gt=0, description="Sample the sequences are tuned for (default: max_sample)"
    )
    metric_directions: dict[str, MetricDirection] = Field(
        default_factory=dict, description="Direction of metrics outside the plan, for the harm scan"
    )
    no_harm_margins: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict,
        description="How much worse a metric outside the plan may get before it vetoes a candidate, by "
        "metric name or kind (latency, cost: fraction; binary: rate; mean: points; preference: below 0.5)",
    )

    @model_validator(mode="after")
    def _sizes(self) -> PlanSpec:
        if self.max_sample < self.min_sample:
            raise ValueError(
                f"max_sample: expected >= min_sample ({self.min_sample}), found {self.max_sample}"
            )
        return self


class OutageSettings(_Spec):
    """When a provider counts as down, how often it is probed, how long a run waits (docs/experiments.md)."""

    failures: int = Field(10, ge=2, le=1000, description="Outage failures in a row (no answer between them)")
    requests: int = Field(3, ge=1, le=1000, description="... from at least this many distinct calls")
    probe_s: float = Field(5.0, gt=0, le=3600, description="While down, one call is tried this often")
    max_s: float = Field(900.0, gt=0, description="Down longer than this: the run stops, its leases undone")

    @model_validator(mode="after")
    def _requests_within_failures(self) -> OutageSettings:
        if self.requests > self.failures:
            raise ValueError(
                f"outage.requests: expected at most outage.failures ({self.failures}), found {self.requests}"
            )
        return self


class ReplaySettings(_Spec):
    """How the replayer treats each call: retries, backoff, lease and stall timeouts, provider outages."""

    max_attempts: int = Field(6, ge=1, le=50)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, gt=0)
    lease_s: float = Field(300.0, gt=0, description="A crashed worker's request is retried after this")
    stall_timeout_s: float = Field(60.0, gt=0)
    timeout_s: float = Field(600.0, gt=0)
    outage: OutageSettings = OutageSettings()


class ExperimentSpec(_Spec):
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    control: ArmSpec
    candidates: tuple[ArmSpec, ...] = Field(min_length=1)
    aa: ArmSpec | None = None
    traffic: TrafficSpec = TrafficSpec()
    limits: tuple[LimitSpec, ...] = ()
    allowed_providers: tuple[str, ...] = Field(min_length=1)
    budget: BudgetSpec
    plan: PlanSpec
    replay: ReplaySettings = ReplaySettings()
    scoring: dict[str, Any] = Field(
        default_factory=dict,
        description="Judges and checks (validated by the scoring stage, see docs/scoring.md)",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> ExperimentSpec:
        seen: set[str] = set()
        for arm in self.arms():
            if arm.name in seen:
                raise ValueError(f"arms: expected unique arm names, found {arm.name!r} twice")
            seen.add(arm.name)
        keys = [limit.key for limit in self.limits]
        if len(keys) != len(set(keys)):
            raise ValueError("limits: expected one entry per provider+model, found duplicates")
        # A limit is looked up by provider/model: one that names no model in use (a typo: `sim-sonet`) would
        # be ignored silently while the real model ran unlimited.
        used = [f"{provider}/{model}" for provider, model in self.called_models()]
        for i, key in enumerate(keys):
            if key not in used:
                raise ValueError(
                    f"limits[{i}]: expected the provider/model of an arm or a judge ({', '.join(used)}), "
                    f"found {key!r}, which would limit nothing"
                )
        return self

    def arms(self) -> tuple[ArmSpec, ...]:
        return (self.control, *self.candidates, *((self.aa,) if self.aa else ()))

    def roles(self) -> tuple[tuple[ArmRole, ArmSpec], ...]:
        roles: list[tuple[ArmRole, ArmSpec]] = [("control", self.control)]
        roles += [("candidate", arm) for arm in self.candidates]
        if self.aa:
            roles.append(("aa", self.aa))
        return tuple(roles)

    def judge_models(self) -> tuple[tuple[str, str], ...]:
        """(provider, model) of each LLM judge in the scoring section: they receive prompts and cost money."""
        judges = self.scoring.get("judges") or []
        return tuple(
            (str(j.get("provider", JUDGE_DEFAULT_PROVIDER)), str(j["model"]))
            for j in judges
            if isinstance(j, Mapping) and isinstance(j.get("model"), str)
        )

    def called_models(self) -> tuple[tuple[str, str], ...]:
        """(provider, model) of every arm and judge, once each, in spec order: what `limits` may name."""
        return tuple(
            dict.fromkeys([*((arm.provider, arm.model) for arm in self.arms()), *self.judge_models()])
        )

    def models(self) -> tuple[str, ...]:
        """Every model the experiment may pay for: its arms' and its judges'."""
        return tuple(
            dict.fromkeys([*(arm.model for arm in self.arms()), *(m for _, m in self.judge_models())])
        )

    def limit_for(self, provider: str, model: str) -> LimitSpec | None:
        return next((lim for lim in self.limits if lim.provider == provider and lim.model == model), None)


def parse_spec(data: Any, where: str = "experiment") -> ExperimentSpec:
    """Validate parsed YAML; ExperimentSpecError names the first wrong field."""
    if not isinstance(data, Mapping):
        raise ExperimentSpecError(
            f"{where}: expected a mapping at the top level, found {type(data).__name__}"
        )
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "value_error":  # our own validators name the field and what they found
            prefix = ".".join(str(p) for p in err["loc"])
            raise ExperimentSpecError(f"{where}: {prefix + '.' if prefix else ''}{message}") from None
        found = "" if err["type"] == "missing" else f", found {err.get('input')!r:.80}"
        raise ExperimentSpecError(f"{where}: {_path(err['loc'])}: {message}{found}") from None


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for a wrong mapping key: the key is already named
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_spec(path: Path) -> ExperimentSpec:
    """Read and validate an experiment YAML file (its providers too: `check_providers`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExperimentSpecError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ExperimentSpecError(f"{path}: not valid YAML ({yaml_problem(exc)})") from None
    spec = parse_spec(data, str(path))
    check_providers(spec, str(path))
    return spec


def _arm_fields(spec: ExperimentSpec) -> list[tuple[str, ArmSpec]]:
    """(field, arm) of each arm, in spec order: `control`, `candidates[0]`, …, `aa`."""
    candidates = [(f"candidates[{i}]", arm) for i, arm in enumerate(spec.candidates)]
    return [("control", spec.control), *candidates, *([("aa", spec.aa)] if spec.aa else [])]


def _provider_fields(spec: ExperimentSpec) -> list[tuple[str, str]]:
    """(field, provider) of each arm and LLM judge, in spec order."""
    fields = [(f"{field}.provider", arm.provider) for field, arm in _arm_fields(spec)]
    judges = spec.scoring.get("judges") or []
    fields += [
        (f"scoring.judges[{i}].provider", str(judge.get("provider", JUDGE_DEFAULT_PROVIDER)))
        for i, judge in enumerate(judges)
        if isinstance(judge, Mapping)
    ]
    return fields


def check_providers(spec: ExperimentSpec, where: str = "experiment") -> None:
    """Refuse, when an experiment is created, a provider no one registered (a typo would show only once its
    replays start) and an arm's or judge's provider outside `allowed_providers` (which `start` refuses)."""
    from shadowlab.providers.registry import provider_names

    known = provider_names()
    named = [(f"allowed_providers[{i}]", p) for i, p in enumerate(spec.allowed_providers)]
    for field, provider in [*named, *_provider_fields(spec)]:
        if provider not in known:
            raise ExperimentSpecError(
                f"{where}: {field}: expected a registered provider ({', '.join(known)}), found {provider!r}"
            )
    allowed = ", ".join(spec.allowed_providers)
    for field, provider in _provider_fields(spec):
        if provider not in spec.allowed_providers:
            raise ExperimentSpecError(
                f"{where}: {field}: expected a provider in allowed_providers ({allowed}), "
                f"found {provider!r}: it may not receive prompts"
            )


def check_startable(spec: ExperimentSpec, prices: PriceTable) -> None:
    """Refuse a start that would send prompts outside the allowlist or spend on an unpriced model."""
    for role, arm in spec.roles():
        if arm.provider not in spec.allowed_providers:
            raise ExperimentSpecError(
                f"{spec.name}: arm {arm.name!r} ({role}): provider {arm.provider!r} is not in "
                f"allowed_providers ({', '.join(spec.allowed_providers)}): not allowed to receive prompts"
            )
    for provider, model in spec.judge_models():
        if provider not in spec.allowed_providers:
            raise ExperimentSpecError(
                f"{spec.name}: judge model {model!r}: provider {provider!r} is not in allowed_providers "
                f"({', '.join(spec.allowed_providers)}): not allowed to receive prompts"
            )
    check_priced(spec, prices, spec.name)


# How a price gets in, said wherever a model has none (docs/providers.md).
PRICE_HOW_TO = (
    "add it to a LiteLLM-format price file (input_cost_per_token, output_cost_per_token) named by "
    "SHADOWLAB_PRICES_FILE; `shadowlab prices import FILE` checks one"
)


def check_priced(spec: ExperimentSpec, prices: PriceTable, where: str = "experiment") -> None:
    """Refuse an arm or LLM judge whose model has no price (a missing price is never $0): at `experiment
    create` and again at `start`, against the table of the moment, with the arm named and how to add one."""
    named = [(f"{field}.model (arm {arm.name!r})", arm.model) for field, arm in _arm_fields(spec)]
    judges = spec.scoring.get("judges") or []
    named += [
        (f"scoring.judges[{i}].model (judge {judge.get('name')!r})", judge["model"])
        for i, judge in enumerate(judges)
        if isinstance(judge, Mapping) and isinstance(judge.get("model"), str)
    ]
    for field, model in named:
        try:
            prices.price(model)
        except UnknownModelPriceError as exc:
            how_to = "" if model in prices.skipped else f"; {PRICE_HOW_TO}"  # else priced, for another mode
            raise ExperimentSpecError(f"{where}: {field}: {exc}{how_to}") from None
