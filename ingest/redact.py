"""PII and secret redaction before storage: typed placeholders, consistent within one capture, counts only.

Every string in the request and the response is scanned (content blocks, tool inputs, tool results), and
the keys of their objects, numbers long enough to be a phone or card number, and the source's free-text
fields (route, conversation id, tags); base64 payloads are skipped only once they are valid base64. The
rules are in `ingest.redact_rules`; each sits behind a cheap pre-check so most strings never reach a
regex. A value seen twice in one capture gets the same placeholder (`[EMAIL_1]` both times); the summary
keeps how many of each type were replaced, never values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ingest.redact_rules import BUILTIN_RULES, Replacer, Rule

_MIN_DIGITS = 9  # the fewest digits of a phone number; card numbers have 13
_MIN_LEN = 6  # the shortest secret we look for, `a@b.co`
# Binary payloads are not text: scanning base64 would only corrupt images and cost time.
_BINARY_KEYS = frozenset({"data", "file_data"})
_SKIP_KEYS = frozenset({"signature"})


@dataclass
class _Scope:
    """Placeholders handed out within one capture."""

    seen: dict[str, dict[str, str]] = field(default_factory=dict)  # kind → normalized value → placeholder
    counts: dict[str, int] = field(default_factory=dict)

    def placeholders(self, rule: Rule) -> Callable[[str], str]:
        """Gives a value of `rule` its placeholder (`[EMAIL_2]`): the one it already has, or the next."""
        kind, label, normalize, counts = rule.kind, rule.label, rule.normalize, self.counts
        seen = self.seen.setdefault(kind, {})

        def placeholder(value: str) -> str:
            counts[kind] = counts.get(kind, 0) + 1
            key = normalize(value)
            found = seen.get(key)
            if found is None:
                found = seen[key] = f"[{label}_{len(seen) + 1}]"
            return found

        return placeholder


@dataclass(frozen=True)
class Redacted:
    request: dict[str, Any]
    response: dict[str, Any] | None
    counts: dict[str, int]
    source: dict[str, Any] = field(default_factory=dict)


class Redactor:
    """Replaces secrets and personal data in JSON values; user rules run first, then the built-in ones."""

    def __init__(self, user_rules: Iterable[Rule] = (), *, builtin: bool = True) -> None:
        user = tuple(user_rules)
        self._user_rules = bool(user)
        self.rules: tuple[Rule, ...] = (*user, *(BUILTIN_RULES if builtin else ()))
        # One pass over the text finds which rules' triggers occur (longest first: `sk-ant-` before `sk-`).
        triggers = sorted({t for rule in self.rules for t in rule.triggers}, key=len, reverse=True)
        self._triggers = re.compile("|".join(map(re.escape, triggers))) if triggers else None

    def redact_capture(
        self,
        request: dict[str, Any],
        response: dict[str, Any] | None,
        source: Mapping[str, Any] | None = None,
    ) -> Redacted:
        """Redact a capture's request, response and free-text source fields (`route`, `conversation_id`,
        `tags`) with one scope, so placeholders agree across them."""
        scope = _Scope()
        slots = _Slots(plain_keys=self._user_rules)  # a user rule may match any key
        fields = {k: v for k, v in (source or {}).items() if k in SOURCE_FIELDS}
        new_request, new_response, new_source = _copy([request, response, fields], slots)
        if slots.any():
            self._redact_slots(slots, scope)
        return Redacted(new_request, new_response, dict(sorted(scope.counts.items())), new_source)

    def redact_text(self, text: str) -> tuple[str, dict[str, int]]:
        """Redact one string (for tests and tools); placeholders numbered from 1."""
        scope = _Scope()
        rules = [(rule, _replacer(rule, scope)) for rule in self.rules]
        return self._text(text, rules, _digit_counts([text])[0] >= _MIN_DIGITS), scope.counts

    def _redact_slots(self, slots: _Slots, scope: _Scope) -> None:
        """Redact the strings, keys and long numbers at `slots` in place."""
        texts = slots.texts()
        joined = "\x00".join(texts)
        # Cheap checks on the whole capture first, so that most strings meet no rule at all: a rule none of
        # whose triggers occurs anywhere, or a digit rule when no string has enough digits, is skipped.
        found = set(self._triggers.findall(joined)) if self._triggers is not None else set()
        digits = [n >= _MIN_DIGITS for n in _digit_counts(texts, joined)]
        any_digits = any(digits)
        rules = [
            (r, _replacer(r, scope))
            for r in self.rules
            if not (r.triggers and found.isdisjoint(r.triggers)) and (any_digits or not r.needs_digits)
        ]
        if not rules:
            return
        slots.write(
            [self._text(text, rules, enough) for text, enough in zip(texts, digits, strict=True)], texts
        )

    def _text(self, text: str, rules: Sequence[tuple[Rule, Replacer]], enough_digits: bool) -> str:
        """`text` with `rules` applied in order; `enough_digits`: the text has at least `_MIN_DIGITS`."""
        original = text  # triggers are looked for in the text as given, before any replacement
        for rule, replace in rules:
            if rule.triggers and not any(t in original for t in rule.triggers):
                continue
            # A digit rule's match holds at least _MIN_DIGITS digits: fewer in the text, nothing to find
            # (placeholders put in by earlier rules add digits but are never part of such a match).
            if rule.needs_digits and not enough_digits:
                continue
            text = rule.pattern.sub(replace, text)
        return text


_KEEP_DIGITS_AND_NUL = bytes(b for b in range(256) if b not in b"0123456789\x00")


def _digit_counts(texts: list[str], joined: str | None = None) -> list[int]:
    """How many ASCII digits each text holds, from one `bytes.translate` over all of them (joined by NUL).

    UTF-8 never puts a digit or a NUL byte inside a multi-byte character, so what is left after deleting
    every other byte is each text's digits, separated by NULs.
    """
    joined = "\x00".join(texts) if joined is None else joined
    if joined.count("\x00") != len(texts) - 1:  # a text holds a NUL itself: count one by one
        return [sum(map(text.count, "0123456789")) for text in texts]
    digits = joined.encode("utf-8", "surrogatepass").translate(None, _KEEP_DIGITS_AND_NUL)
    return [len(part) for part in digits.split(b"\x00")]


# Source fields that hold free text a person may have typed (route and service are code, user_hash a hash).
SOURCE_FIELDS = ("route", "conversation_id", "tags")
_LONG_NUMBER = 10**8  # a number with 9+ digits may be a phone or card number written as JSON


@dataclass
class _Slots:
    """Where the text to scan sits: strings (container, key), dict keys (dict, key) and long numbers."""

    strings: list[tuple[Any, Any]] = field(default_factory=list)
    keys: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    numbers: list[tuple[Any, Any]] = field(default_factory=list)
    plain_keys: bool = True  # False: keys of letters and underscores only (field names) are not scanned

    def any(self) -> bool:
        return bool(self.strings or self.keys or self.numbers)

    def texts(self) -> list[str]:
        return [
            *(c[k] for c, k in self.strings),
            *(k for _, k in self.keys),
            *(str(c[k]) for c, k in self.numbers),
        ]

    def write(self, new: list[str], old: list[str]) -> None:
        """Put back what redaction changed: a number that held a secret becomes its placeholder text."""
        n_strings, n_keys = len(self.strings), len(self.keys)
        values = self.strings + self.numbers
        new_values = new[:n_strings] + new[n_strings + n_keys :]
        old_values = old[:n_strings] + old[n_strings + n_keys :]
        for (container, key), text, was in zip(values, new_values, old_values, strict=True):
            if text != was:
                container[key] = text
        renamed: dict[int, tuple[dict[str, Any], dict[str, str]]] = {}
        for (owner, key), text in zip(self.keys, new[n_strings : n_strings + n_keys], strict=True):
            if text != key:
                renamed.setdefault(id(owner), (owner, {}))[1][key] = text
        for owner, names in renamed.values():  # keys renamed in place, order kept
            items = [(names.get(k, k), v) for k, v in owner.items()]
            owner.clear()
            owner.update(items)


def _plain(key: str) -> bool:
    """Letters and underscores only (`content`, `max_tokens`): no built-in rule can match such a key."""
    return key.replace("_", "").isalpha()


def _copy(value: Any, slots: _Slots) -> Any:
    """A copy of the JSON containers in `value`; where each string, key and long number to scan sits is
    added to `slots`. Skipped, and shared with the input: thinking signatures, base64 payloads and the
    payload of valid base64 data URLs."""
    if isinstance(value, dict):
        binary = value.get("type") == "base64" or "file_data" in value
        out: dict[str, Any] = {}
        for k, v in value.items():
            out[k] = v
            if isinstance(k, str) and len(k) >= _MIN_LEN and (slots.plain_keys or not _plain(k)):
                slots.keys.append((out, k))
            if k in _SKIP_KEYS or (binary and k in _BINARY_KEYS):
                continue
            _slot(out, k, v, slots)
        return out
    items = list(value)
    for i, v in enumerate(items):
        _slot(items, i, v, slots)
    return items


def _slot(container: Any, key: Any, v: Any, slots: _Slots) -> None:
    if isinstance(v, str):
        if len(v) >= _MIN_LEN and not _is_data_url(v):
            slots.strings.append((container, key))
    elif isinstance(v, _CONTAINERS):
        container[key] = _copy(v, slots)
    elif isinstance(v, int) and not isinstance(v, bool) and abs(v) >= _LONG_NUMBER:
        slots.numbers.append((container, key))


_CONTAINERS = (dict, list)  # a tuple: isinstance is faster with it than with `dict | list`


_DATA_URL_HEAD = re.compile(r"data:[\w.+\-]+/[\w.+\-]+(?:;[\w.+\-]+=[\w.+\-]+)*;base64,")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def _is_data_url(value: str) -> bool:
    """A base64 data URL whose header has no free text and whose payload is base64 (skipped: an image is
    not text, and scanning it would only corrupt it). Anything else that starts `data:` is scanned."""
    if not value.startswith("data:"):
        return False
    head = _DATA_URL_HEAD.match(value, 0, 300)
    return head is not None and _BASE64.fullmatch(value, head.end()) is not None


def _replacer(rule: Rule, scope: _Scope) -> Replacer:
    """What replaces a match of `rule`: its placeholder in `scope`, or the match itself when not valid."""
    placeholder, valid = scope.placeholders(rule), rule.valid

    def replace_whole(match: re.Match[str]) -> str:
        value = match.group()
        return value if valid is not None and not valid(value) else placeholder(value)

    def replace_group(match: re.Match[str]) -> str:
        whole, value = match.group(0, "v")
        if valid is not None and not valid(value):
            return whole
        start, end = match.start("v") - match.start(), match.end("v") - match.start()
        return whole[:start] + placeholder(value) + whole[end:]

    return replace_group if "v" in rule.pattern.groupindex else replace_whole
