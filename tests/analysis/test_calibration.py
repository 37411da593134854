"""Fast calibration by simulation; the 10,000-run version is `bench/bench_calibration.py` (make bench)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_calibration.py"
# A t-test's rejection rate at 2,000 runs has SD 0.005 around 0.05; at 1,000, 0.007.
CHEAP_SIMS, QUANTILE_SIMS = 2000, 1000
# The percentile bootstrap is offered on request only; it over-covers slightly (documented).
COVERAGE_EXEMPT = {"p50 bootstrap"}


def _calibration_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("shadowlab_bench_calibration", BENCH)
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def calibration() -> dict[str, tuple[float, float | None]]:
    module = _calibration_module()
    quantile = {"quantiles_asymptotic", "quantiles_bootstrap"}
    cheap = {k: v for k, v in module.SCENARIOS.items() if k not in quantile}
    heavy = {k: v for k, v in module.SCENARIOS.items() if k in quantile}
    rows = [*module.calibrate(CHEAP_SIMS, scenarios=cheap), *module.calibrate(QUANTILE_SIMS, scenarios=heavy)]
    return {row.test: (row.aa_rejection_rate, row.coverage) for row in rows}


def test_every_test_holds_its_size_under_aa(calibration: dict[str, tuple[float, float | None]]) -> None:
    module = _calibration_module()
    assert len(calibration) >= 15
    for test, (rate, _) in calibration.items():
        assert rate <= 0.065, f"{test}: A/A rejection rate {rate}"
        if test in module.T_BASED:
            assert rate >= 0.035, f"{test}: A/A rejection rate {rate} is too conservative"


def test_intervals_cover_a_known_effect(calibration: dict[str, tuple[float, float | None]]) -> None:
    covered = {t: c for t, (_, c) in calibration.items() if c is not None and t not in COVERAGE_EXEMPT}
    assert len(covered) >= 11
    for test, coverage in covered.items():
        assert 0.93 <= coverage <= 0.97, f"{test}: coverage {coverage}"
