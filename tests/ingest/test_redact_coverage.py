"""Redaction covers every place personal data can sit in a capture (issue 20, defect 13): the source's
free-text fields, object keys, long numbers, data URLs that are not really base64, the key formats of
Slack, Google and PEM blocks, card numbers written with dots or double spaces; and a refused capture's
dead-letter detail names the field, never the value."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ingest.messages import Message
from ingest.pipeline import row_of
from ingest.redact import Redactor
from shadowlab.capture import CaptureError, capture_from_dict, decode_capture_bytes
from tests.support.ingest import make_capture

REDACTOR = Redactor()
EMAIL = "jane.doe@example.com"


def _row(capture: dict[str, Any]) -> dict[str, Any]:
    data = json.loads(json.dumps(capture))
    return row_of(capture_from_dict(data), data, Message(b"", None, "t", 0, 0), REDACTOR, datetime.now(UTC))


def test_route_conversation_and_tags_are_redacted_with_the_capture_s_placeholders() -> None:
    capture = make_capture(1, text=f"write to {EMAIL}")
    capture["source"] |= {"route": f"/users/{EMAIL}", "conversation_id": EMAIL,
                          "tags": {"owner": EMAIL, EMAIL: "key holds it"}}  # fmt: skip
    row = _row(capture)
    assert row["request"]["messages"][0]["content"] == "write to [EMAIL_1]"
    assert row["route"] == "/users/[EMAIL_1]" and row["conversation_id"] == "[EMAIL_1]"
    assert row["tags"] == {"owner": "[EMAIL_1]", "[EMAIL_1]": "key holds it"}
    assert row["service"] == "support"  # code names stay as they are
    assert EMAIL not in json.dumps(row, default=str)


def test_object_keys_and_long_numbers_are_scanned() -> None:
    tool_input = {EMAIL: "owner", "card": 4111111111111111, "epoch_ms": 1733480000000, "count": 12345}
    request: dict[str, Any] = {"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "t1", "name": "pay", "input": tool_input}]}]}  # fmt: skip
    out = REDACTOR.redact_capture(request, None)
    stored = out.request["messages"][0]["content"][0]["input"]
    assert stored == {"[EMAIL_1]": "owner", "card": "[CARD_1]", "epoch_ms": 1733480000000, "count": 12345}
    assert list(stored) == ["[EMAIL_1]", "card", "epoch_ms", "count"]  # order kept
    assert out.counts == {"card": 1, "email": 1}
    assert request["messages"][0]["content"][0]["input"] == tool_input  # the input is not modified


@pytest.mark.parametrize(
    ("text", "scanned"),
    [
        (
            "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
            False,
        ),
        (f"data:text/plain;base64,not base64 at all, mail {EMAIL}", True),
        (f"data:text/plain;name={EMAIL};base64,QUJD", True),
    ],
)
def test_only_a_valid_base64_data_url_is_skipped(text: str, scanned: bool) -> None:
    request = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": text}]}
    stored = REDACTOR.redact_capture(request, None).request["messages"][0]["content"]
    assert (stored != text) == scanned
    assert EMAIL not in stored


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("token xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "slack_token"),
        (
            "post to https://hooks.slack.com/services/T0000000/B0000000/XXXXXXXXXXXXXXXXXXXXXXXX",
            "slack_webhook",
        ),
        ("maps key AIzaSyA1234567890abcdefghijklmnopqrstuv", "google_api_key"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7+/x=\n-----END RSA PRIVATE KEY-----",
            "private_key",
        ),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----",
            "private_key",
        ),
        ("card 4111.1111.1111.1111 please", "card"),
        ("card 4111  1111  1111  1111 please", "card"),
    ],
)
def test_more_key_formats_and_card_spellings(text: str, kind: str) -> None:
    redacted, counts = REDACTOR.redact_text(text)
    assert counts == {kind: 1}, redacted
    assert f"[{kind.upper()}_1]" in redacted


@pytest.mark.parametrize(
    ("source", "field", "found"),
    [
        ({"service": "s", "user_hash": 4111111111111111}, "source.user_hash", "a number"),
        ({"service": "s", "conversation_id": ["jane@x.io"]}, "source.conversation_id", "an array of 1 items"),
        ({"service": "s", "tags": {EMAIL: 7}}, "source.tags.[key]", "a number"),
        ({"service": "s", "route": 5550100}, "source.route", "a number"),
    ],
)
def test_a_refused_capture_names_the_field_never_the_value(
    source: dict[str, Any], field: str, found: str
) -> None:
    capture = make_capture(1, source=source)
    with pytest.raises(CaptureError) as refused:
        capture_from_dict(json.loads(json.dumps(capture)))
    assert refused.value.field == field and refused.value.found == found
    assert EMAIL not in refused.value.detail and "4111" not in refused.value.detail


def test_safe_fields_still_show_what_was_found() -> None:
    with pytest.raises(CaptureError) as refused:
        capture_from_dict(json.loads(json.dumps(make_capture(1, api="gemini.generate"))))
    assert refused.value.found == '"gemini.generate"'


@pytest.mark.parametrize("number", ["1e-400", "-2.5E-330", "0.000e-5000"])
def test_a_number_below_a_double_is_refused_not_stored_as_zero(number: str) -> None:
    field = f'"max_tokens": 64, "temperature": {number}'
    raw = json.dumps(make_capture(1)).replace('"max_tokens": 64', field)
    if number.startswith("0.000"):  # a real zero written with an exponent stays a zero
        assert decode_capture_bytes(raw.encode())["request"]["temperature"] == 0.0
        return
    with pytest.raises(CaptureError) as refused:
        decode_capture_bytes(raw.encode())
    assert refused.value.code == "invalid_value"
    assert refused.value.detail == (
        "(message): expected numbers a 64-bit float can hold, "
        "found a nonzero number that would be stored as 0"
    )
