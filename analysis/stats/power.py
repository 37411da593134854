"""Power of the paired t test: n for a minimum detectable effect, and the MDE at a given n."""

from __future__ import annotations

from typing import Any, Literal

from analysis.stats.distributions import t_quantile

PowerAlternative = Literal["two-sided", "larger", "smaller"]
_SM_ALTERNATIVE = {"two-sided": "two-sided", "larger": "larger", "smaller": "smaller"}


def _paired_power_solver() -> Any:
    # statsmodels adds ~1 s of imports; only planning calls pay for it.
    from statsmodels.stats.power import TTestPower

    return TTestPower()


def power_at_n(
    effect_size: float, n: int, *, alpha: float = 0.05, alternative: PowerAlternative = "two-sided"
) -> float:
    """Power of a paired (one-sample) t test; effect_size = mean difference / SD of the differences."""
    solver = _paired_power_solver()
    return float(
        solver.power(effect_size=effect_size, nobs=n, alpha=alpha, alternative=_SM_ALTERNATIVE[alternative])
    )


def n_for_effect(
    effect_size: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: PowerAlternative = "two-sided",
) -> float:
    """Pairs needed to detect `effect_size` (in SD units of the differences) with the given power."""
    if effect_size == 0:
        raise ValueError("effect_size must be non-zero to size an experiment, found 0")
    solver = _paired_power_solver()
    return float(
        solver.solve_power(
            effect_size=effect_size,
            nobs=None,
            alpha=alpha,
            power=power,
            alternative=_SM_ALTERNATIVE[alternative],
        )
    )


def mde_at_n(
    n: int, *, alpha: float = 0.05, power: float = 0.8, alternative: PowerAlternative = "two-sided"
) -> float:
    """Minimum detectable effect (SD units of the differences) at n pairs."""
    if n < 2:
        raise ValueError(f"n must be at least 2 pairs, found {n}")
    solver = _paired_power_solver()
    return float(
        solver.solve_power(
            effect_size=None, nobs=n, alpha=alpha, power=power, alternative=_SM_ALTERNATIVE[alternative]
        )
    )


def mde_from_se(
    se: float | None, df: float | None, *, alpha: float = 0.05, power: float = 0.8
) -> float | None:
    """MDE of a two-sided test from its standard error: (t₁₋α/₂ + t_power)·SE.

    Uses the SE actually estimated (cluster-robust or CUPED where given), so it is the MDE of the
    analysis that was run; a t approximation to the non-central t that `mde_at_n` solves exactly.
    """
    if se is None or df is None or se <= 0:
        return None
    return (t_quantile(1 - alpha / 2, df) + t_quantile(power, df)) * se
