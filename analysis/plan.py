"""The pre-registered decision plan (DESIGN §7) as a frozen dataclass, read from the plan mapping.

The mapping is what `shadowlab.experiment.PlanSpec` stores in `experiments.plan`, plus optional keys
(documented in docs/analysis.md): `planned_sample`, `metric_directions`, `no_harm_margins`, `aa_arm`, `arms`,
`covariate_mean`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from analysis.stats.results import MetricKind

Direction = Literal["higher_is_better", "lower_is_better"]
Design = Literal["sequential", "fixed"]
DIRECTIONS: tuple[Direction, ...] = ("higher_is_better", "lower_is_better")
DESIGNS: tuple[Design, ...] = ("sequential", "fixed")
# Metric names a plan may use for the columns the database loader produces.
ALIASES = {
    "ttft": "ttft_ms",
    "latency": "latency_ms",
    "error_rate": "error",
    "errors": "error",
    "cost": "cost_usd",
    "cost_per_request": "cost_usd",
}
LOWER_IS_BETTER_WORDS = ("error", "refusal", "fail", "timeout")
# How much worse a metric the plan does not name may get before it vetoes a candidate ("no harm
# elsewhere"), per metric kind: latency and cost relative (+10 %, +5 %), rates +1 percentage point, mean
# scores (a 1-10 judge) −0.25 points, preference 5 points below a coin flip. `no_harm_margins` overrides
# them by metric name or by kind.
DEFAULT_NO_HARM_MARGINS: dict[str, float] = {
    "latency": 0.10,
    "cost": 0.05,
    "binary": 0.01,
    "mean": 0.25,
    "preference": 0.05,
}


class PlanError(Exception):
    """The plan cannot be used; the message names the key and what was expected."""


@dataclass(frozen=True)
class Guardrail:
    """A metric that must not get worse than `margin` (a fraction of control when `relative`)."""

    metric: str
    margin: float
    relative: bool = True
    direction: Direction = "lower_is_better"


@dataclass(frozen=True)
class DecisionPlan:
    """What must hold to ship, fixed before the data are seen."""

    primary_metric: str
    primary_direction: Direction = "higher_is_better"
    guardrails: tuple[Guardrail, ...] = ()
    alpha: float = 0.05
    design: Design = "sequential"
    min_sample: int = 100
    max_sample: int = 10_000
    planned_sample: int | None = None
    metric_directions: tuple[tuple[str, Direction], ...] = ()
    no_harm_margins: tuple[tuple[str, float], ...] = ()

    def no_harm_margin(self, metric: str, kind: MetricKind) -> float:
        """The practical margin of an off-plan metric: the plan's value by name, by kind, else the default."""
        named = dict(self.no_harm_margins)
        return named.get(metric, named.get(kind, DEFAULT_NO_HARM_MARGINS[kind]))

    @property
    def n_star(self) -> int:
        """The sample size the confidence sequence is tuned for (and a fixed design's horizon)."""
        return self.planned_sample or self.max_sample

    def direction_of(self, metric: str, kind: MetricKind) -> Direction:
        """Which way is better for a metric: the plan's word, else by kind and name."""
        named = dict(self.metric_directions)
        if metric in named:
            return named[metric]
        if kind in ("latency", "cost"):
            return "lower_is_better"
        if kind == "binary" and any(word in metric.lower() for word in LOWER_IS_BETTER_WORDS):
            return "lower_is_better"
        return "higher_is_better"

    def check_metrics(self, columns: Mapping[str, MetricKind]) -> None:
        """Before analysing: a `PlanError` naming the first plan metric (primary, guardrail) the data lack."""
        for name in (self.primary_metric, *(g.metric for g in self.guardrails)):
            resolve_metric(name, columns)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "plan") -> DecisionPlan:
        """Validate the plan mapping; PlanError names the first wrong key."""
        if not isinstance(data, Mapping):
            raise PlanError(f"{where}: expected a mapping, found {type(data).__name__}")
        primary = data.get("primary_metric")
        if not isinstance(primary, str) or not primary:
            raise PlanError(f"{where}, key primary_metric: expected a metric name, found {primary!r}")
        guardrails = data.get("guardrails") or []
        if not isinstance(guardrails, list | tuple):
            raise PlanError(f"{where}, key guardrails: expected a list, found {guardrails!r}")
        min_sample = _int(data, "min_sample", 100, where)
        max_sample = _int(data, "max_sample", 10_000, where)
        if max_sample < min_sample:
            raise PlanError(
                f"{where}, key max_sample: expected >= min_sample ({min_sample}), found {max_sample}"
            )
        planned = data.get("planned_sample")
        directions = data.get("metric_directions") or {}
        if not isinstance(directions, Mapping):
            raise PlanError(f"{where}, key metric_directions: expected a mapping, found {directions!r}")
        margins = data.get("no_harm_margins") or {}
        if not isinstance(margins, Mapping):
            raise PlanError(f"{where}, key no_harm_margins: expected a mapping, found {margins!r}")
        return cls(
            primary_metric=primary,
            primary_direction=_choice(data, "primary_direction", DIRECTIONS, "higher_is_better", where),
            guardrails=tuple(
                _guardrail(g, f"{where}, key guardrails[{i}]") for i, g in enumerate(guardrails)
            ),
            alpha=_alpha(data, where),
            design=_choice(data, "design", DESIGNS, "sequential", where),
            min_sample=min_sample,
            max_sample=max_sample,
            planned_sample=None if planned is None else _int(data, "planned_sample", 0, where),
            metric_directions=tuple(
                (
                    str(name),
                    _choice(directions, name, DIRECTIONS, "higher_is_better", f"{where}, metric_directions"),
                )
                for name in directions
            ),
            no_harm_margins=tuple(
                (str(name), _margin(value, f"{where}, key no_harm_margins.{name}"))
                for name, value in margins.items()
            ),
        )


def _int(data: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise PlanError(f"{where}, key {key}: expected a positive whole number, found {value!r}")
    return value


def _alpha(data: Mapping[str, Any], where: str) -> float:
    value = data.get("alpha", 0.05)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise PlanError(f"{where}, key alpha: expected a number between 0 and 1, found {value!r}")
    return float(value)


def _choice(data: Mapping[str, Any], key: str, allowed: tuple[Any, ...], default: Any, where: str) -> Any:
    value = data.get(key, default)
    if value not in allowed:
        raise PlanError(f"{where}, key {key}: expected one of {', '.join(allowed)}, found {value!r}")
    return value


def _margin(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or not math.isfinite(value):
        raise PlanError(f"{where}: expected a number >= 0, found {value!r}")
    return float(value)


def _guardrail(item: Any, where: str) -> Guardrail:
    if not isinstance(item, Mapping):
        raise PlanError(f"{where}: expected a mapping with metric and margin, found {item!r}")
    metric = item.get("metric")
    if not isinstance(metric, str) or not metric:
        raise PlanError(f"{where}, key metric: expected a metric name, found {metric!r}")
    margin = _margin(item.get("margin"), f"{where}, key margin")
    relative = item.get("relative", True)
    if not isinstance(relative, bool):
        raise PlanError(f"{where}, key relative: expected true or false, found {relative!r}")
    direction = _choice(item, "direction", DIRECTIONS, "lower_is_better", where)
    return Guardrail(metric, margin, relative, direction)


@dataclass(frozen=True)
class MetricRef:
    """A plan's metric name resolved to a column, and a quantile for `ttft_p95`-style names."""

    name: str
    column: str
    quantile: float | None = None


def resolve_metric(name: str, columns: Mapping[str, MetricKind]) -> MetricRef:
    """`judge_score`, `error_rate`, `ttft_p95`, `ttft_p95_ms`, `latency_ms:p99` … → column (+ quantile)."""
    base, quantile = name, None
    stem = name.removesuffix("_ms")  # `ttft_p95_ms` reads as `ttft_p95`
    for separator in (":p", "_p"):
        head, sep, tail = stem.rpartition(separator)
        if sep and tail.replace(".", "", 1).isdigit() and 0 < float(tail) < 100:
            base, quantile = head, float(tail) / 100
            break
    for candidate in (base, ALIASES.get(base, base), f"{base}_ms"):
        if candidate in columns and (quantile is None or columns[candidate] == "latency"):
            return MetricRef(name, candidate, quantile)
    if name in columns:
        return MetricRef(name, name)
    raise PlanError(
        f"plan metric {name!r}: expected one of the analysed metrics ({', '.join(columns)}), "
        "optionally with a quantile such as ttft_p95"
    )


@dataclass(frozen=True)
class PlanOptions:
    """What the analysis takes from a plan today; the decision rule will read the rest."""

    arms: list[str] | None = None
    aa_arm: str | None = None
    covariate_mean: float | None = None
    decision: DecisionPlan | None = None
    failure_latency_ms: float | None = None
    judge_orders: tuple[int, int] | None = None


def read_plan(path: Path) -> PlanOptions:
    """Plan (YAML or JSON): `arms: [name | {name, role}]`, `aa_arm`, `covariate_mean`, `failure_latency_ms`
    (what a failed replay counts as in latency ratios: the replay timeout), `judge_orders` ([pairs whose
    verdict flipped with the order, pairs judged both ways]: the judge-consistency check), and the decision
    plan (`primary_metric`, `guardrails`, … as in docs/analysis.md) when `primary_metric` is present."""
    import yaml  # only `--from-csv` reads a plan file: a stored experiment's analysis does not load YAML

    try:
        plan = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PlanError(f"plan {path}: cannot read it: {exc}".replace("\n", " ")) from None
    if not isinstance(plan, dict):
        raise PlanError(f"plan {path}: expected a mapping at the top level, found {type(plan).__name__}")
    arms: list[str] | None = None
    aa_arm = plan.get("aa_arm")
    if "arms" in plan:
        if not isinstance(plan["arms"], list):
            raise PlanError(f"plan {path}, key arms: expected a list of arm names")
        arms = []
        for item in plan["arms"]:
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str):
                raise PlanError(f"plan {path}, key arms: expected an arm name, found {item!r}")
            arms.append(name)
            if isinstance(item, dict) and item.get("role") == "aa":
                aa_arm = name
    if aa_arm is not None and not isinstance(aa_arm, str):
        raise PlanError(f"plan {path}, key aa_arm: expected an arm name, found {aa_arm!r}")
    covariate_mean = plan.get("covariate_mean")
    if covariate_mean is not None and not isinstance(covariate_mean, int | float):
        raise PlanError(f"plan {path}, key covariate_mean: expected a number, found {covariate_mean!r}")
    failure_latency = plan.get("failure_latency_ms")
    if failure_latency is not None and (
        isinstance(failure_latency, bool)
        or not isinstance(failure_latency, int | float)
        or failure_latency <= 0
    ):
        raise PlanError(
            f"plan {path}, key failure_latency_ms: expected a positive number (the replay timeout in ms), "
            f"found {failure_latency!r}"
        )
    judge_orders = plan.get("judge_orders")
    if judge_orders is not None and not (
        isinstance(judge_orders, list)
        and len(judge_orders) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in judge_orders)
        and judge_orders[0] <= judge_orders[1]
    ):
        raise PlanError(
            f"plan {path}, key judge_orders: expected [flipped, judged both ways] (two whole numbers, the "
            f"first at most the second), found {judge_orders!r}"
        )
    decision = DecisionPlan.from_dict(plan, where=f"plan {path}") if "primary_metric" in plan else None
    return PlanOptions(
        arms,
        aa_arm,
        None if covariate_mean is None else float(covariate_mean),
        decision,
        None if failure_latency is None else float(failure_latency),
        None if judge_orders is None else (judge_orders[0], judge_orders[1]),
    )
