"""Cohen's kappa against published values."""

from __future__ import annotations

import pytest

from scoring.agreement import kappa, kappa_from_table


def test_simple_kappa_matches_sas_skin_condition_example() -> None:
    # SAS/STAT User's Guide, PROC FREQ "Getting Started: Agreement Study" (Table 3.2, skin condition data,
    # two dermatologists); published output: Simple Kappa 0.3449, ASE 0.0724, 95% CL 0.2030 to 0.4868.
    # https://support.sas.com/documentation/cdl/en/procstat/67528/HTML/default/procstat_freq_gettingstarted02.htm
    table = [[10, 4, 1, 0], [5, 10, 12, 2], [2, 4, 12, 5], [0, 2, 6, 13]]
    result = kappa_from_table(table)
    assert (result.kappa, result.se, result.ci_low, result.ci_high) == pytest.approx(
        (0.3449, 0.0724, 0.2030, 0.4868), abs=5e-5
    )
    assert result.n == 88


def test_weighted_kappa_matches_sas_printout() -> None:
    # SAS PROC FREQ printout quoted in statsmodels' test suite (statsmodels/stats/tests/test_inter_rater.py,
    # TestWeightedCohens, table10): Weighted Kappa 0.4701, ASE 0.1457, 95% CL 0.1845 to 0.7558
    # (Cicchetti-Allison = linear weights).
    result = kappa_from_table([[0, 4, 1], [0, 8, 0], [0, 1, 5]], weights="linear")
    assert (result.kappa, result.se, result.ci_low, result.ci_high) == pytest.approx(
        (0.4701, 0.1457, 0.1845, 0.7558), abs=5e-5
    )


def test_kappa_from_paired_ratings_matches_wikipedia_example() -> None:
    # Wikipedia, "Cohen's kappa", worked example: 50 grant proposals, both yes 20, both no 15, A yes / B no 5,
    # A no / B yes 10: p_o = 0.7, p_e = 0.5, kappa = 0.4.
    first = ["yes"] * 20 + ["yes"] * 5 + ["no"] * 10 + ["no"] * 15
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert kappa(first, second, ["yes", "no"]).kappa == pytest.approx(0.4)


def test_weighted_kappa_on_a_ten_point_scale_credits_near_misses() -> None:
    first = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 3
    second = [2, 3, 4, 5, 6, 7, 8, 9, 10, 9] * 3
    scale = list(range(1, 11))
    assert kappa(first, second, scale).kappa < 0.05
    assert kappa(first, second, scale, weights="quadratic").kappa > 0.9


def test_bad_input_names_what_was_expected() -> None:
    with pytest.raises(ValueError, match="ratings: expected values in"):
        kappa([1], [11], list(range(1, 11)))
    with pytest.raises(ValueError, match="ratings: expected pairs"):
        kappa([1, 2], [1], [1, 2])
