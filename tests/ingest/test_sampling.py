"""Sampling is deterministic by request_id and close to its rate; filters combine as documented."""

from __future__ import annotations

import pytest

from ingest.sampling import Selector, parse_tag_filters, sample_point
from shadowlab.capture import capture_from_dict
from shadowlab.errors import ConfigError
from tests.support.ingest import make_capture


def test_sample_point_is_stable_and_uniform_enough() -> None:
    assert sample_point("req-1") == sample_point("req-1")
    kept = sum(sample_point(f"req-{i}") < 0.1 for i in range(20_000))
    assert 1_800 < kept < 2_200


def test_sampling_keeps_the_same_requests_every_time() -> None:
    selector = Selector(sample_rate=0.3)
    captures = [capture_from_dict(make_capture(i)) for i in range(300)]
    first = [selector.reason_to_skip(c) for c in captures]
    assert first == [selector.reason_to_skip(c) for c in captures]
    assert set(first) == {None, "sampled_out"}


def test_filters_on_source_model_and_tags() -> None:
    capture = capture_from_dict(
        make_capture(1, source={"service": "support", "route": "/chat", "tags": {"team": "a"}})
    )
    assert (
        Selector(services=frozenset({"support", "x"}), models=frozenset({"claude-test"})).reason_to_skip(
            capture
        )
        is None
    )
    assert Selector(routes=frozenset({"/other"})).reason_to_skip(capture) == "filtered"
    assert Selector(environments=frozenset({"prod"})).reason_to_skip(capture) == "filtered"
    assert Selector(tags=parse_tag_filters(["team=a", "team=b"])).reason_to_skip(capture) is None
    assert Selector(tags=parse_tag_filters(["team=b"])).reason_to_skip(capture) == "filtered"


@pytest.mark.parametrize("spec", ["team", "=a"])
def test_bad_tag_filters_say_what_was_expected(spec: str) -> None:
    with pytest.raises(ConfigError, match="--tag: expected KEY=VALUE"):
        parse_tag_filters([spec])


def test_sample_rate_outside_0_1_is_refused() -> None:
    with pytest.raises(ConfigError, match="--sample-rate: expected a number from 0 to 1"):
        Selector(sample_rate=1.5)
