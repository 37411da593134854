"""A corpus of hostile and malformed capture messages (issue 20): each must end in a dead letter with a
machine reason, never a stored row or a traceback. Kept as data so every ingest path can run it."""

from __future__ import annotations

import json
from typing import Any

from tests.support.ingest import make_capture


def _capture(**changes: Any) -> bytes:
    capture = make_capture(900)
    for path, value in changes.items():
        target = capture
        *parents, leaf = path.split("__")
        for key in parents:
            target = target[key]
        if value is _DROP:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return json.dumps(capture).encode()


_DROP = object()
DEEP = "[" * 5000 + "]" * 5000

# (name, raw message, expected dead-letter code)
CORPUS: list[tuple[str, bytes, str]] = [
    ("empty message", b"", "not_json"),
    ("whitespace only", b"   \n\t ", "not_json"),
    ("invalid utf-8", b"\xff\xfe\xfd{}", "not_utf8"),
    ("lone surrogate escape", b'{"schema_version": 1, "request_id": "\\ud800"}', "missing_field"),
    ("truncated json", b'{"schema_version": 1, "request_id": "x"', "not_json"),
    ("json array", b"[1, 2, 3]", "not_object"),
    ("json string", b'"a capture"', "not_object"),
    ("json number", b"42", "not_object"),
    ("json null", b"null", "not_object"),
    ("json true", b"true", "not_object"),
    ("deep nesting", DEEP.encode(), "not_json"),
    ("NaN literal", b'{"schema_version": NaN}', "not_json"),
    ("single quotes", b"{'schema_version': 1}", "not_json"),
    ("trailing comma", b'{"schema_version": 1,}', "not_json"),
    ("empty object", b"{}", "missing_field"),
    ("no schema_version", _capture(schema_version=_DROP), "missing_field"),
    ("schema_version 2", _capture(schema_version=2), "unknown_schema_version"),
    ("schema_version string", _capture(schema_version="1"), "wrong_type"),
    ("schema_version float", _capture(schema_version=1.5), "wrong_type"),
    ("schema_version bool", _capture(schema_version=True), "wrong_type"),
    ("schema_version null", _capture(schema_version=None), "wrong_type"),
    ("no request_id", _capture(request_id=_DROP), "missing_field"),
    ("request_id number", _capture(request_id=12), "wrong_type"),
    ("request_id empty", _capture(request_id=""), "invalid_value"),
    ("request_id huge", _capture(request_id="r" * 10_000), "invalid_value"),
    ("request_id object", _capture(request_id={"a": 1}), "wrong_type"),
    ("no captured_at", _capture(captured_at=_DROP), "missing_field"),
    ("captured_at words", _capture(captured_at="yesterday"), "invalid_value"),
    ("captured_at year 10000", _capture(captured_at="9999-12-31T23:59:59-14:00"), "invalid_value"),
    ("captured_at year 0", _capture(captured_at="0001-01-01T00:00+14:00"), "invalid_value"),
    ("captured_at 1970", _capture(captured_at="1970-01-01T00:00:00Z"), "invalid_value"),
    ("captured_at number", _capture(captured_at=1733480000), "wrong_type"),
    ("no source", _capture(source=_DROP), "missing_field"),
    ("source string", _capture(source="support"), "wrong_type"),
    ("source without service", _capture(source={"route": "/x"}), "missing_field"),
    ("service number", _capture(source__service=5), "wrong_type"),
    ("user_hash number", _capture(source__user_hash=4111111111111111), "wrong_type"),
    ("tags list", _capture(source__tags=["a", "b"]), "wrong_type"),
    ("tag value object", _capture(source__tags={"k": {"v": 1}}), "wrong_type"),
    ("no api", _capture(api=_DROP), "missing_field"),
    ("unknown api", _capture(api="gemini.generate"), "unknown_api"),
    ("api number", _capture(api=3), "unknown_api"),
    ("no request", _capture(request=_DROP), "missing_field"),
    ("request string", _capture(request="hello"), "wrong_type"),
    ("request without model", _capture(request__model=_DROP), "missing_field"),
    ("model number", _capture(request__model=5), "wrong_type"),
    ("max_tokens string", _capture(request__max_tokens="many"), "wrong_type"),
    ("messages missing", _capture(request__messages=_DROP), "missing_field"),
    ("messages object", _capture(request__messages={"role": "user"}), "wrong_type"),
    ("message without role", _capture(request__messages=[{"content": "hi"}]), "missing_field"),
    ("message unknown role",
     _capture(request__messages=[{"role": "robot", "content": "hi"}]), "invalid_value"),
    ("content number", _capture(request__messages=[{"role": "user", "content": 7}]), "wrong_type"),
    ("image without source",
     _capture(request__messages=[{"role": "user", "content": [{"type": "image"}]}]), "missing_field"),
    ("tool_use without id",
     _capture(request__messages=[{"role": "assistant", "content": [{"type": "tool_use", "name": "x",
                                                                    "input": {}}]}]), "missing_field"),
    ("response string", _capture(response="fine"), "wrong_type"),
    ("stream flag string", _capture(request__stream="yes"), "wrong_type"),
    ("system number", _capture(request__system=5), "wrong_type"),
    ("tools object", _capture(request__tools={"name": "x"}), "wrong_type"),
]  # fmt: skip


def decodable() -> list[Any]:
    """The corpus messages that are JSON at all, decoded (for checks past the decoding step)."""
    values = []
    for _name, raw, _code in CORPUS:
        try:
            values.append(json.loads(raw))
        except (ValueError, RecursionError):
            continue
    return values
