"""Cost per request: mean paired difference in USD and relative change by the delta method."""

from __future__ import annotations

from analysis.stats.distributions import FloatArray
from analysis.stats.paired import IntArray, paired_comparison, standard_error, t_result
from analysis.stats.results import DEFAULT_INFERENCE, Inference, MetricComparison, TestResult


def relative_change(
    control: FloatArray, candidate: FloatArray, *, alpha: float = 0.05, clusters: IntArray | None = None
) -> TestResult:
    """mean(candidate)/mean(control) − 1 with a delta-method interval.

    The ratio r = ȳ/x̄ has influence values ψᵢ = (yᵢ − r·xᵢ)/x̄, so Var(r̂) = Var(ψ)/n, which also
    gives the cluster-robust version by summing ψ within clusters.
    """
    test = "relative change, delta method"
    n = int(control.size)
    if n == 0:
        return TestResult(test, 0, None, None, None, None, notes=("no complete pairs",))
    control_mean = float(control.mean())
    if control_mean <= 0.0:
        return TestResult(test, n, None, None, None, None, notes=("control mean is not positive",))
    ratio = float(candidate.mean()) / control_mean
    influence = (candidate - ratio * control) / control_mean
    se, df = standard_error(influence - influence.mean(), clusters=clusters, n_params=1)
    return t_result(test, n, ratio - 1.0, se, df, alpha=alpha, null=0.0)


def compare_cost(
    control: FloatArray, candidate: FloatArray, inference: Inference = DEFAULT_INFERENCE
) -> MetricComparison:
    """Mean cost difference (USD) by paired t, plus the relative change."""
    relative = relative_change(control, candidate, alpha=inference.alpha, clusters=inference.clusters)
    return paired_comparison("cost", control, candidate, inference, relative=relative)
