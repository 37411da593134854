"""A refused capture (`CaptureError`, with the dead-letter code ingest files it under) and how a pydantic
ValidationError of the envelope or of a request body becomes one: a JSON path, what was expected, what was
found (never more than 32 characters of the message, so headers do not leak content). docs/capture.md.
"""

from __future__ import annotations

import json
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
        expected, found = _expected(error["msg"]), describe(error["input"])
    more_errors = f" (+{more} more error{'s' if more > 1 else ''})" if more else ""
    return CaptureError(_path(loc, prefix), expected, found + more_errors, code)


def _path(loc: tuple[int | str, ...], prefix: str) -> str:
    out = prefix
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
        elif not item.startswith("~"):  # union tags, see `shadowlab.apis.wire`
            out += f".{item}" if out else item
    return out or MESSAGE


def _expected(msg: str) -> str:
    """pydantic's "Input should be a valid list" as "an array": JSON words for whoever reads the DLQ."""
    tail = msg.split(" should ", 1)[-1].removeprefix("be ").removeprefix("have ")
    if tail.startswith("a valid dictionary"):
        return "an object"
    return {"a valid list": "an array", "a valid string": "a string", "a valid integer": "an integer"}.get(
        tail, tail
    )


def describe(value: Any) -> str:
    """What was found, short and without echoing long content (it may be personal data)."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return f"an array of {len(value)} items"
    if isinstance(value, str) and len(value) > 32:
        return f"a string of {len(value)} characters"
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return type(value).__name__
