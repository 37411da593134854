"""`route --by` and `analyze` options are checked before the experiment is read."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from analysis.cli_inputs import (
    DEFAULT_ADJUST,
    DEFAULT_ALPHA,
    SEGMENT_DIMENSIONS,
    AnalyzeInputs,
    check_dimension,
)
from analysis.facts import RequestFacts
from analysis.segments import segment_dimensions
from shadowlab.errors import ConfigError


def test_the_checked_names_are_those_the_segments_have() -> None:
    facts = [
        RequestFacts("bot", "faq", {"language": "de", "plan": "pro"}, 120, 1),
        RequestFacts("search", None, {"plan": "free"}, 4500, 4),
    ]
    names = [dimension.name for dimension in segment_dimensions(facts)]

    assert sorted(n for n in names if not n.startswith("tag:")) == sorted(SEGMENT_DIMENSIONS)
    assert [n for n in names if n.startswith("tag:")] == ["tag:plan"]
    for name in names:
        check_dimension(name)


@pytest.mark.parametrize("dimension", ["colour", "tag:", "tag: ", "Route", "tags:plan"])
def test_an_unknown_dimension_is_an_error_listing_the_known_ones(dimension: str) -> None:
    with pytest.raises(ConfigError) as raised:
        check_dimension(dimension)
    known = "route, service, language, prompt_length, turn or tag:<key>"
    assert str(raised.value) == f"--by: expected one of {known}, found {dimension!r}"


def _inputs(**changes: object) -> AnalyzeInputs:
    stored = AnalyzeInputs("x", None, None, (), DEFAULT_ALPHA, DEFAULT_ADJUST, None, None, None)
    return replace(stored, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"alpha": 0.01}, "--alpha: expected with --from-csv only (EXPERIMENT is analysed with its stored"),
        ({"metric": ("q=mean",)}, "--metric: expected with --from-csv only"),
        ({"adjust": "bh"}, "--adjust: expected with --from-csv only"),
        ({"experiment": None, "from_csv": Path("d.csv"), "control": "c", "export_plan": Path("p.json")},
         "--export-plan: expected with EXPERIMENT (it writes a stored experiment's data), found it with"),
        ({"from_csv": Path("d.csv")}, "give either EXPERIMENT or --from-csv FILE (exactly one)"),
    ],
)  # fmt: skip
def test_an_option_the_chosen_input_would_ignore_is_an_error(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        _inputs(**changes).check()
    assert str(raised.value).startswith(message)
    _inputs().check()  # the defaults with EXPERIMENT are fine
