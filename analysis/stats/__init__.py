"""Pure statistics engine: numpy arrays in, frozen dataclasses out (no project, database or UI imports)."""

from analysis.stats.binary import exact_mcnemar_p, mcnemar_chi2, newcombe_paired_interval, paired_binary
from analysis.stats.clustering import cluster_variance, clustering_summary
from analysis.stats.cost import compare_cost, relative_change
from analysis.stats.health import (
    AA_THRESHOLD,
    aa_noise_floor_check,
    completeness_checks,
    error_imbalance_check,
    judge_consistency_check,
    minimum_sample_check,
)
from analysis.stats.latency import compare_latency, geometric_mean_ratio
from analysis.stats.multiplicity import ADJUSTMENTS, Adjustment, adjust_p_values
from analysis.stats.paired import compare_mean, mean_inference, paired_mean_difference, wilcoxon_pratt
from analysis.stats.power import mde_at_n, mde_from_se, n_for_effect, power_at_n
from analysis.stats.preference import compare_preference, decisive_pairs_binomial
from analysis.stats.quantiles import quantile_differences
from analysis.stats.results import (
    DEFAULT_INFERENCE,
    METRIC_KINDS,
    ClusterDimension,
    ClusteringSummary,
    HealthCheck,
    HealthReport,
    Inference,
    MetricComparison,
    MetricKind,
    QuantileDifference,
    TestResult,
)

__all__ = [
    "ADJUSTMENTS",
    "DEFAULT_INFERENCE",
    "Inference",
    "METRIC_KINDS",
    "Adjustment",
    "ClusterDimension",
    "ClusteringSummary",
    "HealthCheck",
    "HealthReport",
    "MetricComparison",
    "MetricKind",
    "QuantileDifference",
    "TestResult",
    "AA_THRESHOLD",
    "aa_noise_floor_check",
    "cluster_variance",
    "clustering_summary",
    "adjust_p_values",
    "compare_cost",
    "compare_latency",
    "compare_mean",
    "compare_preference",
    "completeness_checks",
    "decisive_pairs_binomial",
    "error_imbalance_check",
    "judge_consistency_check",
    "exact_mcnemar_p",
    "geometric_mean_ratio",
    "mcnemar_chi2",
    "mde_at_n",
    "mde_from_se",
    "mean_inference",
    "minimum_sample_check",
    "n_for_effect",
    "newcombe_paired_interval",
    "paired_binary",
    "paired_mean_difference",
    "power_at_n",
    "quantile_differences",
    "relative_change",
    "wilcoxon_pratt",
]
