"""Fast calibration by simulation (`analysis.stats.calibration`); `bench/bench_calibration.py` runs 10,000."""

from __future__ import annotations

import pytest

from analysis.stats.calibration import SCENARIOS, T_BASED, calibrate

pytestmark = pytest.mark.slow
# A t-test's rejection rate at 2,000 runs has SD 0.005 around 0.05; at 1,000, 0.007.
CHEAP_SIMS, QUANTILE_SIMS = 2000, 1000
# The percentile bootstrap is offered on request only; it over-covers slightly (documented).
COVERAGE_EXEMPT = {"p50 bootstrap"}


@pytest.fixture(scope="module")
def calibration() -> dict[str, tuple[float, float | None]]:
    quantile = {"quantiles_asymptotic", "quantiles_bootstrap"}
    cheap = {k: v for k, v in SCENARIOS.items() if k not in quantile}
    heavy = {k: v for k, v in SCENARIOS.items() if k in quantile}
    rows = [*calibrate(CHEAP_SIMS, scenarios=cheap), *calibrate(QUANTILE_SIMS, scenarios=heavy)]
    return {row.test: (row.aa_rejection_rate, row.coverage) for row in rows}


def test_every_test_holds_its_size_under_aa(calibration: dict[str, tuple[float, float | None]]) -> None:
    assert len(calibration) >= 15
    for test, (rate, _) in calibration.items():
        assert rate <= 0.065, f"{test}: A/A rejection rate {rate}"
        if test in T_BASED:
            assert rate >= 0.035, f"{test}: A/A rejection rate {rate} is too conservative"


def test_intervals_cover_a_known_effect(calibration: dict[str, tuple[float, float | None]]) -> None:
    covered = {t: c for t, (_, c) in calibration.items() if c is not None and t not in COVERAGE_EXEMPT}
    assert len(covered) >= 11
    for test, coverage in covered.items():
        assert 0.93 <= coverage <= 0.97, f"{test}: coverage {coverage}"
