"""Deterministic checks, table-driven: each kind passing, failing, and not applicable."""

from __future__ import annotations

from typing import Any

import pytest

from scoring.base import ScorerConfigError, Subject
from scoring.checks import CheckScorer

WEATHER = {
    "name": "get_weather",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city"],
    },
}
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}

CASES: list[tuple[str, dict[str, Any], Subject, float | None]] = [
    ("json_valid", {}, Subject("p", '{"a": 1}'), 1.0),
    ("json_valid", {}, Subject("p", '```json\n{"a": 1}\n```'), 1.0),
    ("json_valid", {}, Subject("p", '{"a": 1,}'), 0.0),  # malformed: trailing comma
    ("json_valid", {}, Subject("p", "{'a': 1}"), 0.0),  # malformed: single quotes
    ("json_valid", {}, Subject("p", ""), 0.0),
    ("json_schema", {"schema": SCHEMA}, Subject("p", '{"n": 3}'), 1.0),
    ("json_schema", {"schema": SCHEMA}, Subject("p", '{"n": "3"}'), 0.0),
    ("json_schema", {"schema": SCHEMA}, Subject("p", '{"n": 3'), 0.0),  # malformed JSON
    ("regex", {"pattern": r"^\d{3}-\d{4}$"}, Subject("p", "555-1234"), 1.0),
    ("regex", {"pattern": r"^\d{3}-\d{4}$"}, Subject("p", "call 555-1234"), 0.0),
    ("exact", {}, Subject("p", "  Paris \n", reference="paris"), 1.0),
    ("exact", {"case_sensitive": True}, Subject("p", "paris", reference="Paris"), 0.0),
    ("exact", {}, Subject("p", "Paris"), None),  # no reference
    ("exact", {"text": "42"}, Subject("p", "42"), 1.0),  # fixed text, no reference needed
    ("contains", {}, Subject("p", "The capital is Paris.", reference="paris"), 1.0),
    ("contains", {}, Subject("p", "The capital is Lyon.", reference="Paris"), 0.0),
    ("contains", {}, Subject("p", "anything"), None),  # no reference
    ("length", {"min_chars": 3, "max_chars": 5}, Subject("p", "abcd"), 1.0),
    ("length", {"min_chars": 3, "max_chars": 5}, Subject("p", "ab"), 0.0),
    ("length", {"max_chars": 5}, Subject("p", "abcdef"), 0.0),
    ("refusal", {}, Subject("p", "Sure, here is the recipe."), 1.0),
    ("refusal", {}, Subject("p", "I'm sorry, but I can't help with that."), 0.0),
    ("refusal", {}, Subject("p", "I am unable to assist with this request."), 0.0),
    (
        "tool_call",
        {},
        Subject("p", "", ({"name": "get_weather", "input": {"city": "Oslo"}},), tools=(WEATHER,)),
        1.0,
    ),
    (
        "tool_call",
        {},
        Subject("p", "", ({"name": "get_weather", "input": {"days": 2}},), tools=(WEATHER,)),
        0.0,
    ),
    (
        "tool_call",
        {},
        Subject("p", "", ({"name": "get_weather", "input": {"city": "Oslo", "days": 0}},), tools=(WEATHER,)),
        0.0,
    ),
    ("tool_call", {}, Subject("p", "", ({"name": "get_time", "input": {}},), tools=(WEATHER,)), 0.0),
    ("tool_call", {}, Subject("p", "", ({"name": "get_weather", "input": None},), tools=(WEATHER,)), 0.0),
    ("tool_call", {}, Subject("p", "no call", tools=(WEATHER,)), None),
    ("tool_call", {"required": True}, Subject("p", "no call", tools=(WEATHER,)), 0.0),
]


@pytest.mark.parametrize(("kind", "params", "subject", "expected"), CASES)
def test_check(kind: str, params: dict[str, Any], subject: Subject, expected: float | None) -> None:
    result = CheckScorer(f"{kind}_check", kind, params).run(subject)
    assert result.value == expected
    assert result.failure is None
    if expected is None:
        assert result.details["skipped"] in ("no_reference", "no_call")


def test_failed_check_says_why() -> None:
    result = CheckScorer("s", "json_schema", {"schema": SCHEMA}).run(Subject("p", '{"n": "3"}'))
    assert "n: '3' is not of type 'integer'" in result.details["error"]


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("nope", {}, "scoring.checks[c].kind: expected one of"),
        ("regex", {}, "scoring.checks[c].pattern: required for kind regex"),
        ("regex", {"pattern": "("}, "scoring.checks[c].pattern: invalid regex"),
        ("json_schema", {"schema": {"type": 5}}, "scoring.checks[c].schema: invalid JSON Schema"),
    ],
)
def test_bad_configuration_names_the_field(kind: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ScorerConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        CheckScorer("c", kind, params)


def test_version_changes_with_parameters() -> None:
    one = CheckScorer("len", "length", {"max_chars": 5})
    assert one.version == CheckScorer("len", "length", {"max_chars": 5}).version
    assert one.version != CheckScorer("len", "length", {"max_chars": 6}).version
