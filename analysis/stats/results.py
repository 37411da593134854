"""Frozen result types returned by the statistics engine."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

MetricKind = Literal["mean", "binary", "latency", "cost", "preference"]
METRIC_KINDS: tuple[MetricKind, ...] = ("mean", "binary", "latency", "cost", "preference")


@dataclass(frozen=True)
class Inference:
    """How every comparison estimates its uncertainty: the two-sided level `alpha`, cluster-robust SEs
    (`clusters`: one id per pair, or an n × 2 array for two-way clustering) and CUPED (`covariate` per pair
    with its population mean `covariate_mean`; without the mean, CUPED is skipped)."""

    alpha: float = 0.05
    clusters: npt.NDArray[np.int64] | None = None
    covariate: npt.NDArray[np.float64] | None = None
    covariate_mean: float | None = None

    def subset(self, keep: npt.NDArray[np.bool_]) -> Inference:
        """The same inference over the pairs where `keep` is true."""
        return replace(
            self,
            clusters=None if self.clusters is None else self.clusters[keep],
            covariate=None if self.covariate is None else self.covariate[keep],
        )


DEFAULT_INFERENCE = Inference()


@dataclass(frozen=True)
class TestResult:
    """One estimate with its interval and test; None where the data cannot support a value."""

    test: str
    n: int
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    statistic: float | None = None
    df: float | None = None
    null_value: float = 0.0
    se: float | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class QuantileDifference:
    """Candidate − control difference of one quantile, failures counted as +∞."""

    quantile: float
    n: int
    supported: bool
    method: Literal["asymptotic", "bootstrap", "none"]
    control: float | None = None
    candidate: float | None = None
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class MetricComparison:
    """Everything computed for one metric and one candidate against the control."""

    kind: MetricKind
    primary: TestResult
    control_mean: float | None = None
    candidate_mean: float | None = None
    robustness: tuple[TestResult, ...] = ()
    relative: TestResult | None = None
    quantiles: tuple[QuantileDifference, ...] = ()
    mde: float | None = None
    clustered: bool = False
    cuped: bool = False


@dataclass(frozen=True)
class HealthCheck:
    """One pre-verdict check: passed is None when it does not apply."""

    name: str
    passed: bool | None
    detail: str
    p_value: float | None = None


@dataclass(frozen=True)
class HealthReport:
    """All health checks; the experiment is healthy when none failed."""

    checks: tuple[HealthCheck, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed is not False for check in self.checks)


@dataclass(frozen=True)
class ClusterDimension:
    """One clustering dimension (e.g. conversation, prompt fingerprint) of the values a test ran on."""

    clusters: int
    largest_share: float
    design_effect: float | None  # one-way clustered variance of the mean / its iid variance
    used: bool  # whether it entered the variance the tests use (a trivial dimension does not)


@dataclass(frozen=True)
class ClusteringSummary:
    """How clustered the per-pair values are: each dimension, and the design effect of the variance used."""

    n: int
    design_effect: float | None
    dimensions: tuple[ClusterDimension, ...]
