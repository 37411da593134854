"""PII and secret redaction before storage: typed placeholders, consistent within one capture, counts only.

Every string in the request and the response is scanned (content blocks, tool inputs, tool results), and
the keys of their objects, numbers long enough to be a phone or card number, and the source's free-text
fields (route, conversation id, tags); base64 payloads are skipped only once they are valid base64. The
rules are in `ingest.redact_rules`; each sits behind a cheap pre-check so most strings never reach a
regex, and ingest hands over the capture's JSON text so that a capture holding no trigger at all is not
walked. A value seen twice in one capture gets the same placeholder (`[EMAIL_1]` both times); the summary
keeps how many of each type were replaced, never values.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ahocorasick_rs
import msgspec

from ingest.redact_rules import BUILTIN_RULES, EmailPattern, Replacer, Rule
from ingest.redact_slots import SOURCE_FIELDS, Slots, copy_with_slots

_MIN_DIGITS = 9  # the fewest digits of a phone number; card numbers have 13
_SHORT_TEXT = 4096  # up to this length, one Aho-Corasick pass lists the triggers in a capture
_JSON_ESCAPED = re.compile(r'["\\/\x00-\x1f]')  # characters JSON writes, or may write, as an escape


@dataclass
class _Scope:
    """Placeholders handed out within one capture."""

    seen: dict[str, dict[str, str]] = field(default_factory=dict)  # kind → normalized value → placeholder
    counts: dict[str, int] = field(default_factory=dict)

    def placeholders(self, rule: Rule) -> Callable[[str], str]:
        """Gives a value of `rule` its placeholder (`[EMAIL_2]`): the one it already has, or the next."""
        label, normalize = rule.label, rule.normalize
        seen = self.seen.setdefault(rule.kind, {})

        def placeholder(value: str) -> str:
            key = normalize(value)
            found = seen.get(key)
            if found is None:
                found = seen[key] = f"[{label}_{len(seen) + 1}]"
            return found

        return placeholder

    def numbered(self, rule: Rule, values: list[str]) -> list[str]:
        """`placeholders` of many values at once (in C but for one step per new value)."""
        label, seen = rule.label, self.seen.setdefault(rule.kind, {})
        keys = values if rule.normalize is str else list(map(rule.normalize, values))
        new = [key for key in dict.fromkeys(keys) if key not in seen]
        first = len(seen) + 1
        seen.update(zip(new, [f"[{label}_{i}]" for i in range(first, first + len(new))], strict=True))
        return list(map(seen.__getitem__, keys))

    def count(self, kind: str, replaced: int) -> None:
        if replaced:
            self.counts[kind] = self.counts.get(kind, 0) + replaced


@dataclass(frozen=True)
class _Found:
    """What a capture's JSON text holds: the rules' triggers, and whether a run of digits for a digit rule."""

    triggers: set[str]
    digit_run: bool


@dataclass(frozen=True)
class Redacted:
    request: dict[str, Any]
    response: dict[str, Any] | None
    counts: dict[str, int]
    source: dict[str, Any] = field(default_factory=dict)


Splitter = Callable[[str], list[str]]  # text, match, text, ..., text (`re.Pattern.split`, one group)


class Redactor:
    """Replaces secrets and personal data in JSON values; user rules run first, then the built-in ones."""

    def __init__(self, user_rules: Iterable[Rule] = (), *, builtin: bool = True) -> None:
        user = tuple(user_rules)
        self._user_rules = bool(user)
        self.rules: tuple[Rule, ...] = (*user, *(BUILTIN_RULES if builtin else ()))
        # A built-in rule's matches are found by one `split` (no Python call per match) when it has no group.
        self._splitters = (*(None for _ in user), *map(_splitter, self.rules[len(user) :]))
        triggers = {t: rule.ignore_case for rule in self.rules for t in rule.triggers}
        # Longest first, so that `sk-ant-` is found as itself and not as `sk-`.
        self._triggers = tuple(t for t in sorted(triggers, key=len, reverse=True) if not triggers[t])
        self._trigger_patterns: dict[tuple[str, ...], re.Pattern[str]] = {}
        # All the triggers in one pass, in Rust: a third of the CPU of the regex alternation (bench capture).
        self._automaton = ahocorasick_rs.AhoCorasick(self._triggers) if self._triggers else None
        self._folded_triggers = tuple(t for t, folded in triggers.items() if folded)
        # A user rule may match anything; a trigger JSON may write with an escape may hide in a JSON text.
        self._json_precheck = not user and not any(_JSON_ESCAPED.search(t) for t in triggers)

    def redact_capture(
        self,
        request: dict[str, Any],
        response: dict[str, Any] | None,
        source: Mapping[str, Any] | None = None,
        *,
        json_text: str | None = None,
    ) -> Redacted:
        """Redact a capture's request, response and free-text source fields (`route`, `conversation_id`,
        `tags`) with one scope, so placeholders agree across them.

        `json_text`: the JSON they were decoded from (the capture's message as sent, with them as its
        `request`, `response` and `source`), whose parts to scan are searched once for the rules' triggers
        instead of the texts in them; when they hold none, nothing is copied or scanned and the result holds
        the input itself."""
        fields = {k: v for k, v in (source or {}).items() if k in SOURCE_FIELDS}
        found = None if json_text is None else self._found_in_json(json_text)
        if found is not None and not found.triggers and not found.digit_run:
            return Redacted(request, response, {}, fields)
        scope = _Scope()
        slots = Slots(plain_keys=self._user_rules)  # a user rule may match any key
        new_request, new_response, new_source = copy_with_slots([request, response, fields], slots)
        if slots.any():
            self._redact_slots(slots, scope, found)
        return Redacted(new_request, new_response, dict(sorted(scope.counts.items())), new_source)

    def _found_in_json(self, json_text: str) -> _Found | None:
        """The triggers and digit runs in the JSON of a capture's request, response and source: of all their
        strings, keys and numbers, so of those redaction scans (the envelope's own fields, a request id
        full of digits, are not). Each of them is written out in the JSON as it is, unless a `\\u` escape
        spells a character (no trigger holds one JSON escapes otherwise); None when that may be, or with a
        user rule (it has no trigger). None too when it holds an `@`: an email, the most common find, makes
        the walk likely, and searching the JSON first would only add to its cost."""
        if not self._json_precheck or "@" in json_text or "\\u" in json_text:
            return None
        text = _scanned_json(json_text)
        return _Found(self._triggers_in(text), _has_digit_run(text, _digit_marks(text)))

    def redact_text(self, text: str) -> tuple[str, dict[str, int]]:
        """Redact one string (for tests and tools); placeholders numbered from 1."""
        scope = _Scope()
        return _apply(self._active([text], text, scope), text), scope.counts

    def _redact_slots(self, slots: Slots, scope: _Scope, found: _Found | None = None) -> None:
        """Redact the strings, keys and long numbers at `slots` in place (`found`: in the capture's JSON)."""
        texts = slots.texts()
        joined = "\x00".join(texts)
        substitutions = self._active(texts, joined, scope, found)
        if not substitutions:
            return
        if self._user_rules or joined.count("\x00") != len(texts) - 1:
            slots.write([_apply(substitutions, text) for text in texts], texts)
            return
        # No built-in rule matches a NUL or looks past one differently than past the end of a string, so the
        # texts that hold one of a rule's triggers (all of them for a digit rule) go through it at once,
        # joined: the cost of a rule is one call, not one per text.
        new = list(texts)
        for substitute in substitutions:
            where = substitute.where
            if where is None or len(where) == len(texts):
                new = substitute("\x00".join(new)).split("\x00")
            else:
                done = substitute("\x00".join([new[i] for i in where])).split("\x00")
                for i, text in zip(where, done, strict=True):
                    new[i] = text
        slots.write(new, texts)

    def _active(
        self, texts: list[str], joined: str, scope: _Scope, found: _Found | None = None
    ) -> list[_Substitution]:
        """The rules that may match somewhere in `texts` (`joined` by NUL), each with the texts it may match
        in: those holding one of its triggers, or for a digit rule those with enough digits. `found`: what
        the capture's JSON holds, which the texts cannot hold more of."""
        triggers = self._triggers_in(joined) if found is None else found.triggers
        digit_holders: list[int] | None = None if found is None or found.digit_run else []
        active = []
        for rule, splitter in zip(self.rules, self._splitters, strict=True):
            where = None
            if rule.triggers:
                if triggers.isdisjoint(rule.triggers):
                    continue
                where = rule.holders(texts)
                if not where:  # the JSON holds the trigger elsewhere (a request id, a skipped payload)
                    continue
            elif rule.needs_digits:
                digit_holders = _digit_holders(texts, joined) if digit_holders is None else digit_holders
                if not digit_holders:
                    continue
                where = digit_holders
            active.append(_Substitution(rule, splitter, scope, where))
        return active

    def _triggers_in(self, text: str) -> set[str]:
        """The triggers that occur in `text` (all of them; a trigger too many only costs time): one
        Aho-Corasick pass over a short text; over a long one, a regex pass restarted without each trigger once
        it is found (listing every match would list every `@` of a text holding 400,000 of them)."""
        lowered = text.lower() if self._folded_triggers else ""
        found = {t for t in self._folded_triggers if t in lowered}
        if self._automaton is None:
            return found
        if len(text) <= _SHORT_TEXT:  # one pass, while the list of matches cannot grow long
            return found.union(self._automaton.find_matches_as_strings(text, overlapping=True))
        remaining, pos = self._triggers, 0
        while remaining and (match := self._any_of(remaining).search(text, pos)):
            found.add(match.group())
            remaining = tuple(t for t in remaining if t != match.group())
            pos = match.start()
        return found

    def _any_of(self, triggers: tuple[str, ...]) -> re.Pattern[str]:
        pattern = self._trigger_patterns.get(triggers)
        if pattern is None:
            if len(self._trigger_patterns) >= 256:  # a hostile mix of triggers would grow it without end
                self._trigger_patterns.clear()
            pattern = self._trigger_patterns[triggers] = re.compile("|".join(map(re.escape, triggers)))
        return pattern


_RAW_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_SCANNED_MEMBERS = ("request", "response", "source")


def _scanned_json(json_text: str) -> str:
    """The JSON texts of the members of a capture that redaction scans, joined by NUL (no trigger or digit
    run spans one); the whole text when it is not an object with a `request` (it holds them all then)."""
    try:
        members = _RAW_MEMBERS(json_text)
    except msgspec.DecodeError:  # not an object (ValidationError is a DecodeError)
        return json_text
    if "request" not in members:
        return json_text
    return "\x00".join(bytes(members[k]).decode() for k in _SCANNED_MEMBERS if k in members)


def _apply(substitutions: Iterable[_Substitution], text: str) -> str:
    for substitute in substitutions:
        text = substitute(text)
    return text


def _splitter(rule: Rule) -> Splitter | None:
    pattern = rule.pattern
    if isinstance(pattern, EmailPattern):
        return pattern.split
    if isinstance(pattern, re.Pattern) and pattern.groups == 0:
        return re.compile(f"({pattern.pattern})", pattern.flags).split
    return None


class _Substitution:
    """One rule applied within one scope: each valid match becomes its placeholder, the count goes up."""

    def __init__(self, rule: Rule, splitter: Splitter | None, scope: _Scope, where: list[int] | None) -> None:
        self._rule, self._split, self._scope = rule, splitter, scope
        self.where = where  # the indexes of the texts it may match in (None: all)
        # Only `sub` calls back per match (a rule without a splitter): the others number matches in bulk.
        self._replace = None if splitter is not None else _replacer(rule, scope.placeholders(rule), scope)

    def __call__(self, text: str) -> str:
        if self._replace is not None:  # no splitter
            return self._rule.pattern.sub(self._replace, text)
        assert self._split is not None
        parts = self._split(text)
        if len(parts) == 1:
            return text
        # Each distinct match is checked once, and numbered in order of first appearance: a Python step per
        # distinct value, C for the rest.
        found, valid = parts[1::2], self._rule.valid
        if valid is None:
            parts[1::2] = self._scope.numbered(self._rule, found)
            replaced = len(found)
        else:
            distinct = list(dict.fromkeys(found))
            kept = [value for value in distinct if valid(value)]
            if not kept:
                return text
            replacement = dict(zip(distinct, distinct, strict=True))
            replacement.update(zip(kept, self._scope.numbered(self._rule, kept), strict=True))
            parts[1::2] = map(replacement.__getitem__, found)
            times = Counter(found) if len(kept) < len(distinct) else None
            replaced = len(found) if times is None else sum(map(times.__getitem__, kept))
        self._scope.count(self._rule.kind, replaced)
        return "".join(parts)


# A card or a phone number is digits and separators only, at least `_MIN_DIGITS` digits (`\d`, like the
# rules: any script's digits, which luhn_valid reads too).
_DIGIT_RUN = re.compile(rf"\d(?:[ .\-+()]*\d){{{_MIN_DIGITS - 1}}}")
# `_DIGIT_RUN` in ASCII text, with C string operations instead of a regex tried at every digit: the
# separators a run may hold are deleted and every other byte but NUL becomes "x", the digits "0"; what is
# left of a run is `_MIN_DIGITS` zeros in a row.
_RUN_SEPARATORS = b" .-+()"
_DIGIT_MARKS = bytes(b if b in b"0123456789\x00" else ord("x") for b in range(256)).translate(
    bytes.maketrans(b"123456789", b"000000000")
)
_RUN_MARK = b"0" * _MIN_DIGITS


def _digit_marks(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass").translate(_DIGIT_MARKS, _RUN_SEPARATORS)


def _has_digit_run(text: str, marks: bytes) -> bool:
    """Whether `text` (with its `_digit_marks`) holds a run for a digit rule: found in the marks, or by the
    regex where another script's digits may be part of one (UTF-8 never puts an ASCII byte inside a
    multi-byte character, so the marks of ASCII digits are exact)."""
    return _RUN_MARK in marks or (not text.isascii() and _DIGIT_RUN.search(text) is not None)


def _digit_holders(texts: list[str], joined: str) -> list[int]:
    """Which of `texts` (`joined` by NUL) hold a run of digits and separators long enough for a digit rule;
    the marks of all the texts come from one `translate` (a NUL stays a NUL), unless a text holds a NUL."""
    ascii_only = joined.isascii()
    if joined.count("\x00") == len(texts) - 1:
        whole = _digit_marks(joined)
        if ascii_only and _RUN_MARK not in whole:  # the common case: no text holds one (none spans a NUL)
            return []
        marks = whole.split(b"\x00")
    else:
        marks = list(map(_digit_marks, texts))
    if ascii_only:
        return [i for i, mark in enumerate(marks) if _RUN_MARK in mark]
    return [i for i, (text, mark) in enumerate(zip(texts, marks, strict=True)) if _has_digit_run(text, mark)]


def _replacer(rule: Rule, placeholder: Callable[[str], str], scope: _Scope) -> Replacer:
    """What replaces a match of `rule` (a user rule, or one with groups): its placeholder, or the match
    itself when not valid."""
    kind, valid = rule.kind, rule.valid

    def replace_whole(match: re.Match[str]) -> str:
        value = match.group()
        if valid is not None and not valid(value):
            return value
        scope.count(kind, 1)
        return placeholder(value)

    def replace_group(match: re.Match[str]) -> str:
        whole, value = match.group(0, "v")
        if valid is not None and not valid(value):
            return whole
        scope.count(kind, 1)
        start, end = match.start("v") - match.start(), match.end("v") - match.start()
        return whole[:start] + placeholder(value) + whole[end:]

    return replace_group if "v" in rule.pattern.groupindex else replace_whole
