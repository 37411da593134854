"""A refused capture (`CaptureError`, with the dead-letter code ingest files it under) and how a pydantic
ValidationError of the envelope or of a request body becomes one: a JSON path, what was expected, what was
found. The detail lands in logs and dead-letter headers, so it names the field and the kind of value, never
the value itself, except for fields that cannot hold personal data (`SAFE_FIELDS`: versions, API names,
timestamps, model names, roles…); a free-form key in the path is shown as `[key]`. docs/capture.md.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from shadowlab.errors import ShadowlabError

__all__ = ["MESSAGE", "CaptureError", "CaptureErrorCode", "describe", "validate_as"]

MESSAGE = "(message)"  # the path of an error about the whole message

CaptureErrorCode = Literal[
    "not_utf8",
    "not_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "unknown_schema_version",
    "unknown_api",
    "too_large",
    "invalid_value",
]


class CaptureError(ShadowlabError, ValueError):
    """A refused capture: `code` is the DLQ machine code, `detail` names the field and what was expected."""

    exit_code = 2

    def __init__(self, field: str, expected: str, found: str, code: CaptureErrorCode) -> None:
        self.field, self.expected, self.found, self.code = field, expected, found, code
        super().__init__(f"{code}: {self.detail}")

    @property
    def detail(self) -> str:
        return f"{self.field}: expected {self.expected}, found {self.found}"


_M = TypeVar("_M", bound=BaseModel)
_CODES: dict[str, CaptureErrorCode] = {
    "missing": "missing_field",
    "missing_field": "missing_field",
    "invalid_value": "invalid_value",
    "int_parsing": "wrong_type",
    "float_parsing": "wrong_type",
    "bool_parsing": "wrong_type",
    "int_from_float": "wrong_type",
}


def validate_as(model: type[_M], data: Any, prefix: str) -> _M:
    """`data` validated as `model`; the first error as a CaptureError whose path starts with `prefix`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # An unknown api makes the request union fail too: report the cause, not its consequence.
        api_errors = [e for e in errors if e["loc"][:1] == ("api",)]
        more = 0 if api_errors else len(errors) - 1
        raise _capture_error((api_errors or errors)[0], prefix, more) from None


def _capture_error(error: ErrorDetails, prefix: str, more: int) -> CaptureError:
    kind, loc = error["type"], error["loc"]
    code = _CODES.get(kind) or ("wrong_type" if kind.endswith("_type") else "invalid_value")
    if kind == "literal_error" and loc in (("api",), ("schema_version",)):
        code = "unknown_api" if loc == ("api",) else "unknown_schema_version"
    if kind == "missing":
        expected, found = "a value (required)", "nothing"
    else:
        safe = bool(loc) and isinstance(loc[-1], str) and loc[-1] in SAFE_FIELDS
        expected, found = _expected(error["msg"]), describe(error["input"], safe=safe)
    more_errors = f" (+{more} more error{'s' if more > 1 else ''})" if more else ""
    return CaptureError(_path(loc, prefix), expected, found + more_errors, code)


# Fields whose values say nothing about a person: echoed in the detail (at most 32 characters).
SAFE_FIELDS = frozenset({
    "schema_version", "api", "captured_at", "model", "role", "type", "stop_reason", "finish_reason",
    "max_tokens", "max_output_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "stream",
    "environment", "tool_choice", "n", "seed",
})  # fmt: skip
# A path segment shown as is: a field name, not free-form text (tag keys, tool argument names).
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
_DIGIT_RUN = re.compile(r"\d{5,}")


def _path(loc: tuple[int | str, ...], prefix: str) -> str:
    out = prefix
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
        elif not item.startswith("~"):  # union tags, see `shadowlab.apis.wire`
            name = item if _FIELD_NAME.fullmatch(item) and not _DIGIT_RUN.search(item) else "[key]"
            out += f".{name}" if out else name
    return out or MESSAGE


def _expected(msg: str) -> str:
    """pydantic's "Input should be a valid list" as "an array": JSON words for whoever reads the DLQ."""
    tail = msg.split(" should ", 1)[-1].removeprefix("be ").removeprefix("have ")
    if tail.startswith("a valid dictionary"):
        return "an object"
    return {"a valid list": "an array", "a valid string": "a string", "a valid integer": "an integer"}.get(
        tail, tail
    )


def describe(value: Any, *, safe: bool = False) -> str:
    """What was found: its kind and size; the value itself only when `safe` (a field that cannot hold
    personal data) and short, or for true, false and null."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return f"an array of {len(value)} items"
    if value is None or isinstance(value, bool) or (safe and isinstance(value, str | int | float)):
        text = json.dumps(value)
        if len(text) <= 34:
            return text
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__
