"""Redaction: table-driven positives and tricky negatives, placeholder consistency, counts, user rules."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.redact import Redactor
from ingest.redact_rules import EmailPattern, luhn_valid, parse_user_rule
from shadowlab.errors import ConfigError

REDACTOR = Redactor()

POSITIVES = [
    ("write to jane.doe@example.com today", "write to [EMAIL_1] today", "email"),
    ("see https://ex.com/u?email=bob%2B1@corp.io&x=1", "see https://ex.com/u?email=bob%2B1@[EMAIL_1]", None),
    (
        "https://app.example.com/profile?user=alice@corp.io&tab=2",
        "https://app.example.com/profile?user=[EMAIL_1]&tab=2",
        "email",
    ),
    ("call +1 415 555 2671 now", "call [PHONE_1] now", "phone"),
    ("call (415) 555-2671", "call [PHONE_1]", "phone"),
    ("call 415.555.2671.", "call [PHONE_1].", "phone"),
    ("intl +442079460958", "intl [PHONE_1]", "phone"),
    ("card 4111 1111 1111 1111 exp 12/29", "card [CARD_1] exp 12/29", "card"),
    ("card 4111-1111-1111-1111", "card [CARD_1]", "card"),
    ("amex 3782 822463 10005", "amex [CARD_1]", "card"),
    ("card:5555555555554444;", "card:[CARD_1];", "card"),
    ("key sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345-_x", "key [ANTHROPIC_KEY_1]", "anthropic_key"),
    ("OPENAI_API_KEY=sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123", "OPENAI_API_KEY=[OPENAI_KEY_1]", "openai_key"),
    ("legacy sk-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghij", "legacy [OPENAI_KEY_1]", "openai_key"),
    ("aws AKIAIOSFODNN7EXAMPLE here", "aws [AWS_KEY_1] here", "aws_key"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key = [AWS_SECRET_1]",
        "aws_secret",
    ),
    ("token ghp_0123456789abcdefghijABCDEFGHIJ012345", "token [GITHUB_TOKEN_1]", "github_token"),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "[GITHUB_TOKEN_1]", "github_token"),
    (
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
        "Authorization: Bearer [BEARER_TOKEN_1]",
        "bearer_token",
    ),
    ("authorization: bearer abc123def456ghi789", "authorization: bearer [BEARER_TOKEN_1]", "bearer_token"),
]

NEGATIVES = [
    "order 1234567812345678 shipped",  # 16 digits, fails Luhn: an order id, kept
    "epoch 1706702400123 ms",  # 13 digits starting with 1: not a card
    "captured_at 2025-01-31T12:00:00Z",
    "version 1.2.3 and build 20250131",
    "server at 192.168.100.200",
    "the bearer of this letter",
    "task-abcdefghijklmnopqrstuvwxyz is a slug, not a key",
    "uuid 550e8400-e29b-41d4-a716-446655440000",
    "price 1,299.00 USD for 3 items",
    "an @mention and user@localhost",
]


@pytest.mark.parametrize(("text", "expected", "kind"), POSITIVES)
def test_redacts_each_kind(text: str, expected: str, kind: str | None) -> None:
    redacted, counts = REDACTOR.redact_text(text)
    if kind is None:  # percent-encoded: the local part is not recognisable, the domain part must still go
        assert "corp.io" not in redacted
    else:
        assert redacted == expected
        assert counts == {kind: 1}


def test_key_names_in_any_case_and_other_scripts_digits_are_redacted() -> None:
    # Before: the triggers were "ecret"/"ECRET", and only ASCII digits made a text worth a digit rule.
    phone = "\u0664\u0661\u0665 \u0665\u0665\u0665 \u0662\u0666\u0667\u0661"  # Arabic-Indic digits
    text = f"aWs_SeCrEt_AcCeSs_KeY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, call {phone}"
    assert REDACTOR.redact_text(text) == (
        "aWs_SeCrEt_AcCeSs_KeY=[AWS_SECRET_1], call [PHONE_1]",
        {"aws_secret": 1, "phone": 1},
    )


@pytest.mark.parametrize("text", NEGATIVES)
def test_keeps_lookalikes(text: str) -> None:
    assert REDACTOR.redact_text(text) == (text, {})


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("4111 1111 1111 1111")
    assert not luhn_valid("1234567812345678")
    assert not luhn_valid("4111")


def _textbook_luhn(text: str) -> bool:
    nums = [int(c) for c in text if c.isdecimal()]
    doubled = [d * 2 - 9 if d * 2 > 9 else d * 2 for d in reversed(nums[-2::-2])]
    return 13 <= len(nums) <= 19 and (sum(nums[-1::-2]) + sum(doubled)) % 10 == 0


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789 -.+()٣x", max_size=24))
def test_luhn_agrees_with_the_textbook_checksum(text: str) -> None:
    assert luhn_valid(text) == _textbook_luhn(text)


def test_placeholders_are_consistent_across_request_and_response() -> None:
    request: dict[str, Any] = {
        "messages": [
            {"role": "user", "content": "I am a@x.io, not b@x.io; again A@X.IO"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t", "name": "f", "input": {"k": "sk-ant-" + "a" * 30}}
                ],
            },
        ]
    }
    response = {"text": "noted b@x.io and a@x.io", "usage": {"input_tokens": 3}}
    out = REDACTOR.redact_capture(request, response)
    assert out.request["messages"][0]["content"] == "I am [EMAIL_1], not [EMAIL_2]; again [EMAIL_1]"
    assert out.request["messages"][1]["content"][0]["input"] == {"k": "[ANTHROPIC_KEY_1]"}
    assert out.response == {"text": "noted [EMAIL_2] and [EMAIL_1]", "usage": {"input_tokens": 3}}
    assert out.counts == {"anthropic_key": 1, "email": 5}
    assert request["messages"][0]["content"].startswith("I am a@x.io")  # input left untouched


def test_binary_payloads_are_not_scanned() -> None:
    data = "4111111111111111" * 4
    request = {
        "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}]
    }
    assert REDACTOR.redact_capture(request, None).request == request


def test_user_rules_run_first_and_name_their_placeholder() -> None:
    redactor = Redactor([parse_user_rule(r"employee=EMP-\d{6}")])
    assert redactor.redact_text("EMP-123456 and EMP-123456 mail x@y.io") == (
        "[EMPLOYEE_1] and [EMPLOYEE_1] mail [EMAIL_1]",
        {"employee": 2, "email": 1},
    )


@pytest.mark.parametrize("spec", ["nameonly", "1bad=x", "ok=(", "empty=a*"])
def test_bad_user_rules_say_what_was_expected(spec: str) -> None:
    with pytest.raises(ConfigError, match="--redact-pattern"):
        parse_user_rule(spec)


FRAGMENTS = [
    "jane.doe@example.com",
    "JANE.DOE@example.com",
    "+1 415 555 2671",
    "(415) 555-2671",
    "4111 1111 1111 1111",
    "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123",
    "Bearer abcdefghijklmnop123",
    "BeArEr abcdefghijklmnop123",
    "Secret_Access_Key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AKIAIOSFODNN7EXAMPLE",
    "order 12345",
    "2025",
    " ",
    ". ",
    "\x00",
    "é漢",
    "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",  # Arabic-Indic digits: a digit run
    '"/\\\n',  # escaped in JSON
]


def _string_by_string(redactor: Redactor, texts: list[str]) -> tuple[list[str], dict[str, int]]:
    """What redaction must give: every rule on every string in order, behind its triggers only."""
    seen: dict[tuple[str, str], str] = {}
    counts: dict[str, int] = {}
    out = []
    for text in texts:
        original = text
        for rule in redactor.rules:
            haystack = original.lower() if rule.ignore_case else original
            if rule.triggers and not any(t in haystack for t in rule.triggers):
                continue

            def replace(match: Any, rule: Any = rule) -> str:
                group = "v" if "v" in rule.pattern.groupindex else 0
                value, whole = match.group(group), match.group(0)
                if rule.valid is not None and not rule.valid(value):
                    return str(whole)
                counts[rule.kind] = counts.get(rule.kind, 0) + 1
                key = (rule.kind, rule.normalize(value))
                if key not in seen:
                    seen[key] = f"[{rule.label}_{sum(k == rule.kind for k, _ in seen) + 1}]"
                start, end = match.start(group) - match.start(), match.end(group) - match.start()
                return str(whole[:start] + seen[key] + whole[end:])

            text = rule.pattern.sub(replace, text)
        out.append(text)
    return out, dict(sorted(counts.items()))


@pytest.mark.parametrize("user_rules", [[], [r"ticket=T-\d{4}"]], ids=["built-in", "with a user rule"])
@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(FRAGMENTS), max_size=6).map("".join), min_size=1, max_size=6))
def test_the_capture_wide_prechecks_change_nothing(user_rules: list[str], texts: list[str]) -> None:
    # Built-in rules alone scan all the strings joined by NUL at once; with a user rule, string by string.
    redactor = Redactor(map(parse_user_rule, user_rules))
    request = {"messages": [{"role": "user", "content": t} for t in texts]}
    long_texts = [t for t in texts if len(t) >= 6]  # shorter strings are never scanned
    expected, counts = _string_by_string(redactor, long_texts)
    # Ingest passes the message's JSON, searched once for the triggers (\u escapes spell them otherwise): in
    # an envelope, only its request, response and source are (a request id of digits is never scanned).
    envelope = {"request_id": "123456789012", "request": request, "source": {"service": "svc"}}
    bodies = (request, envelope)
    for json_text in (None, *map(json.dumps, bodies), *(json.dumps(b, ensure_ascii=False) for b in bodies)):
        out = redactor.redact_capture(request, None, json_text=json_text)
        got = [m["content"] for m, t in zip(out.request["messages"], texts, strict=True) if len(t) >= 6]
        assert got == expected and out.counts == counts


def test_a_capture_whose_json_holds_no_trigger_is_not_walked() -> None:
    clean = {"messages": [{"role": "user", "content": "order 12345, shipped 2025-01-31"}]}
    assert REDACTOR.redact_capture(clean, None, json_text=json.dumps(clean)).request is clean
    # Each of these may be (part of) a match, the last one spelled with an escape: walked and redacted.
    for content in ("mail jane@example.com", "call 415 555 2671", "mail jane\\u0040example.com"):
        json_text = '{"messages": [{"role": "user", "content": "' + content + '"}]}'
        request = json.loads(json_text)
        out = REDACTOR.redact_capture(request, None, json_text=json_text)
        assert out.request is not request and out.counts


def test_what_the_envelope_holds_outside_request_response_and_source_does_not_make_a_walk() -> None:
    request = {"messages": [{"role": "user", "content": "order 12345, shipped 2025-01-31"}]}
    source = {"service": "svc"}
    envelope = {"request_id": "415 555 2671", "trace": "AKIAIOSFODNN7EXAMPLE", "source": source}
    envelope["request"] = request
    assert REDACTOR.redact_capture(request, None, source, json_text=json.dumps(envelope)).request is request
    # The source's free-text fields are scanned: a phone number in the route is found and redacted.
    source["route"] = "/call/415 555 2671"
    out = REDACTOR.redact_capture(request, None, source, json_text=json.dumps(envelope))
    assert out.source == {"route": "/call/[PHONE_1]"} and out.counts == {"phone": 1}


def test_digits_spread_over_several_strings_are_not_one_number() -> None:
    request = {"a": "call 415 555", "b": "then 2671 ok", "c": "card 4111 1111", "d": "1111 1111 end"}
    assert REDACTOR.redact_capture(request, None).request == request


# Worst cases for the regexes: each would take many seconds at this size if a rule scanned a long run of
# text once per start position (the old email regex took 42 s at 196 KiB). Each ends with a real email.
SIZE = 200 * 1024
TAIL = " mail jane@example.com"
ADVERSARIAL = {
    "local part without a domain": "a" * SIZE + "@x",
    "dotted local part, @ at the end": ".b" * (SIZE // 2) + "@",
    "dotted run after an @": "@" + ".b" * (SIZE // 2),
    "one-letter labels, no top-level domain": "x@b" + ".b" * (SIZE // 2),
    "labels ending in dots": "x@" + "b." * (SIZE // 2),
    "hyphens in a label": "x@" + "b-" * (SIZE // 2),
    "many @ without domains": "a@" * (SIZE // 2),
    "secret key name, then spaces": "aws_secret_access_key" + " " * SIZE,
    "bearer, then spaces": "Bearer" + " " * SIZE,
    "GitHub tokens one character short": (" ghp_" + "a" * 35) * (SIZE // 40),
    "OpenAI keys one character short": ("sk-" + "a" * 19 + " ") * (SIZE // 23),
    "digits and spaces": "1 " * (SIZE // 2),
    "digit groups joined by hyphens": "1234-" * (SIZE // 5),
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_adversarial_text_is_redacted_in_linear_time(text: str) -> None:
    assert REDACTOR.redact_text(text + TAIL) == (text + " mail [EMAIL_1]", {"email": 1})


@pytest.mark.timeout(20)
def test_long_local_parts_are_redacted_whole() -> None:
    text = "a" * SIZE + "@example.com and " + "b." * SIZE + "c@example.org"
    assert REDACTOR.redact_text(text) == ("[EMAIL_1] and [EMAIL_2]", {"email": 2})


EMAIL_PIECES = ["a", "Z9", ".", "-", "_", "%", "+", "@", " ", "é", "co", "io", ".uk", "x@y.io", "b-"]


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(EMAIL_PIECES), max_size=16).map("".join))
def test_the_linear_email_finder_matches_what_the_plain_regex_matches(text: str) -> None:
    # The plain regex is quadratic on long runs, but on short texts it is the reference.
    plain, linear = re.compile(EmailPattern.pattern), EmailPattern()
    assert [m.span() for m in linear.finditer(text)] == [m.span() for m in plain.finditer(text)]
    assert linear.sub(lambda m: f"<{m.group()}>", text) == plain.sub(lambda m: f"<{m.group()}>", text)
    assert linear.split(text) == re.compile(f"({EmailPattern.pattern})").split(text)
