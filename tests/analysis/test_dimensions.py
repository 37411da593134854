"""`route --by` is checked against the dimensions the segments can have, before the experiment is read."""

from __future__ import annotations

import pytest

from analysis.dimensions import SEGMENT_DIMENSIONS, check_dimension
from analysis.segments import RequestFacts, segment_dimensions
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
