"""Deterministic checks, configured in the experiment spec; 1.0 = passed, 0.0 = failed, None = not applicable.

Built-in kinds: `json_valid`, `json_schema` (schema), `regex` (pattern), `exact` and `contains` (against the
reference, or a fixed `text`), `length` (min_chars, max_chars), `refusal` (passes when the answer is not a
refusal), `tool_call` (each call's name is one of the request's tools and its arguments match that tool's
input schema; `required: true` fails an answer with no call). User checks: a callable
`(subject, params) -> bool | float | None` registered under the entry-point group `shadowlab.checks`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import jsonschema

from scoring.base import ScorerConfigError, ScoreResult, Subject, version_of

__all__ = ["CHECKS", "ENTRY_POINT_GROUP", "CheckFunction", "CheckScorer", "check_kinds", "parse_json_answer"]

ENTRY_POINT_GROUP = "shadowlab.checks"
CheckFunction = Callable[[Subject, Mapping[str, Any]], ScoreResult]
_FENCE = re.compile(r"^```(?:json)?\s*\n(.*?)\n```\s*$", re.DOTALL)
_REFUSAL = re.compile(
    r"\b(I can(?:no|')t (?:help|assist|comply|provide)|I(?:'m| am) (?:not able|unable) to (?:help|assist)"
    r"|I won't (?:help|be able)|I must (?:decline|refuse)|as an AI(?: language model)?, I)",
    re.IGNORECASE,
)


def _result(passed: bool, **details: Any) -> ScoreResult:
    return ScoreResult(1.0 if passed else 0.0, details=details)


def _not_applicable(reason: str) -> ScoreResult:
    return ScoreResult(None, details={"skipped": reason})


def parse_json_answer(text: str) -> Any:
    """The JSON in an answer (bare, or in one ```json fence); ValueError when there is none."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    return json.loads(fenced.group(1) if fenced else stripped)


def _json_valid(subject: Subject, params: Mapping[str, Any]) -> ScoreResult:
    try:
        parse_json_answer(subject.answer)
    except ValueError as exc:
        return _result(False, error=f"not JSON: {exc}")
    return _result(True)


def _json_schema(subject: Subject, params: Mapping[str, Any]) -> ScoreResult:
    try:
        data = parse_json_answer(subject.answer)
    except ValueError as exc:
        return _result(False, error=f"not JSON: {exc}")
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(params["schema"]).iter_errors(data)
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return _result(False, error=f"{where}: {error.message}")
    return _result(True)


def _regex(subject: Subject, params: Mapping[str, Any]) -> ScoreResult:
    return _result(re.search(params["pattern"], subject.answer) is not None)


def _expected(subject: Subject, params: Mapping[str, Any]) -> str | None:
    text = params.get("text")
    return str(text) if text is not None else subject.reference


def _normal(text: str, params: Mapping[str, Any]) -> str:
    text = " ".join(text.split())
    return text if params.get("case_sensitive", False) else text.casefold()


def _exact(subject: Subject, params: Mapping[str, Any]) -> ScoreResult:
    expected = _expected(subject, params)
    if expected is None:
        return _not_applicable("no_reference")
    return _result(_normal(subject.answer, params) == _normal(expected, params))


def _contains(subject: Subject, params: Mapping[str, Any]) -> ScoreResult:
    expected = _expected(subject, params)
    if expected is None:
        return _not_applicable("no_reference")
    return _result(_normal(expected, params) in _normal(subject.answer, params))


def _length(subject: Subject, params: Mapping[str, Any]) -> ScoreResult:
    size = len(subject.answer)
    low, high = params.get("min_chars", 0), params.get("max_chars")
    return _result(size >= low and (high is None or size <= high), chars=size)


def _refusal(subject: Subject, params: Mapping[str, Any]) -> ScoreResult:
    found = _REFUSAL.search(subject.answer)
    return _result(found is None, refusal=found.group(0) if found else None)


def _tool_call(subject: Subject, params: Mapping[str, Any]) -> ScoreResult:
    if not subject.tool_calls:
        return _result(False, error="no tool call") if params.get("required") else _not_applicable("no_call")
    schemas = {str(t.get("name")): t.get("input_schema") or {} for t in subject.tools}
    for call in subject.tool_calls:
        name = str(call.get("name"))
        if name not in schemas:
            return _result(False, error=f"tool {name!r}: expected one of {sorted(schemas)}")
        arguments = call.get("input")
        if not isinstance(arguments, dict):
            return _result(False, error=f"tool {name!r}: arguments are not a JSON object")
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(schemas[name]).iter_errors(arguments)
        )
        if error is not None:
            return _result(False, error=f"tool {name!r}: {error.message}")
    return _result(True)


@dataclass(frozen=True)
class _Kind:
    function: CheckFunction
    required: tuple[str, ...] = ()


CHECKS: dict[str, _Kind] = {
    "json_valid": _Kind(_json_valid),
    "json_schema": _Kind(_json_schema, ("schema",)),
    "regex": _Kind(_regex, ("pattern",)),
    "exact": _Kind(_exact),
    "contains": _Kind(_contains),
    "length": _Kind(_length),
    "refusal": _Kind(_refusal),
    "tool_call": _Kind(_tool_call),
}


def _user_check(kind: str) -> CheckFunction | None:
    point = next((p for p in entry_points(group=ENTRY_POINT_GROUP) if p.name == kind), None)
    if point is None:
        return None
    user = point.load()

    def run(subject: Subject, params: Mapping[str, Any]) -> ScoreResult:
        outcome = user(subject, params)
        if isinstance(outcome, ScoreResult):
            return outcome
        return ScoreResult(None if outcome is None else float(outcome))

    return run


def check_kinds() -> tuple[str, ...]:
    """Built-in kinds and those registered by entry point."""
    return tuple(sorted(set(CHECKS) | {p.name for p in entry_points(group=ENTRY_POINT_GROUP)}))


@dataclass(frozen=True)
class CheckScorer:
    """One configured check; its version covers the kind and parameters."""

    name: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    version: str = ""

    def __post_init__(self) -> None:
        builtin = CHECKS.get(self.kind)
        if builtin is None and _user_check(self.kind) is None:
            raise ScorerConfigError(
                f"scoring.checks[{self.name}].kind: expected one of {', '.join(check_kinds())}, "
                f"found {self.kind!r}"
            )
        for key in builtin.required if builtin else ():
            if key not in self.params:
                raise ScorerConfigError(f"scoring.checks[{self.name}].{key}: required for kind {self.kind}")
        if self.kind == "regex":
            try:
                re.compile(self.params["pattern"])
            except re.error as exc:
                raise ScorerConfigError(
                    f"scoring.checks[{self.name}].pattern: invalid regex ({exc})"
                ) from None
        if self.kind == "json_schema":
            try:
                jsonschema.Draft202012Validator.check_schema(self.params["schema"])
            except jsonschema.SchemaError as exc:
                raise ScorerConfigError(
                    f"scoring.checks[{self.name}].schema: invalid JSON Schema ({exc.message})"
                ) from None
        if not self.version:
            object.__setattr__(self, "version", version_of("check", self.kind, dict(self.params)))

    def run(self, subject: Subject) -> ScoreResult:
        builtin = CHECKS.get(self.kind)
        function = builtin.function if builtin else _user_check(self.kind)
        assert function is not None  # checked in __post_init__
        return function(subject, self.params)

    async def score(self, subject: Subject) -> ScoreResult:
        return self.run(subject)
