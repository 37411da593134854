"""PII and secret redaction before storage: typed placeholders, consistent within one capture, counts only.

Every string in the request and the response is scanned (content blocks, tool inputs, tool results).
Rules run in order (secrets before emails before card numbers before phone numbers), each behind a cheap
pre-check so that most strings never reach a regex. A value seen twice in one capture gets the same
placeholder (`[EMAIL_1]` both times); the summary keeps how many of each type were replaced, never values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shadowlab.errors import ConfigError

Check = Callable[[str], bool]
Replacer = Callable[[re.Match[str]], str]


class Pattern(Protocol):
    """What a rule needs of its pattern: `re.Pattern`, or a finder with `re`'s matches in linear time."""

    @property
    def groupindex(self) -> Mapping[str, int]: ...

    def sub(self, repl: Replacer, string: str) -> str: ...


@dataclass(frozen=True)
class Rule:
    """One kind of secret: `pattern` finds candidates, `valid` confirms them, group `v` (if any) goes."""

    kind: str
    pattern: Pattern
    triggers: tuple[str, ...] = ()  # the string must contain one of these for the regex to run
    needs_digits: bool = False
    valid: Check | None = None
    normalize: Callable[[str], str] = str

    @property
    def label(self) -> str:
        return self.kind.upper()


def luhn_valid(digits: str) -> bool:
    """True when `digits` (separators allowed) passes the Luhn checksum used by card numbers."""
    nums = _only_digits(digits)
    if not 13 <= len(nums) <= 19:
        return False
    if not nums.isascii():  # other scripts' decimal digits (`\d` matches them)
        nums = "".join(str(int(c)) for c in nums)
    # From the right, every second digit is doubled (a doubled digit above 9 counts as its digit sum);
    # the sum of the ASCII codes less 48 per digit is the sum of the digits.
    backwards = nums[::-1]
    total = sum((backwards[::2] + backwards[1::2].translate(_LUHN_DOUBLED)).encode()) - 48 * len(nums)
    return total % 10 == 0


_LUHN_DOUBLED = str.maketrans("0123456789", "0246813579")


def _card_valid(value: str) -> bool:
    # Card numbers start with 2-6 (Mastercard, Amex, Visa, Discover...): epoch milliseconds start with 1.
    digits = _only_digits(value)
    return digits[:1] in ("2", "3", "4", "5", "6") and luhn_valid(digits)


_NON_DIGITS = re.compile(r"\D")
_SEPARATORS = str.maketrans("", "", " -.+()")  # all a card or phone match holds besides digits


def _only_digits(value: str) -> str:
    digits = value.translate(_SEPARATORS)  # the common case, 3 times faster than the regex
    return digits if digits.isdecimal() else _NON_DIGITS.sub("", value)


def _phone_valid(value: str) -> bool:
    digits = _only_digits(value)
    if not 9 <= len(digits) <= 15:
        return False
    groups = value.split(".")
    is_ip_like = len(groups) == 4 and all(g.isdigit() and len(g) <= 3 for g in groups)
    return not is_ip_like


def _token_like(value: str) -> bool:
    # "the bearer of this letter" is prose; a token is long or has a digit or a symbol in it.
    return len(value) >= 20 or not value.isalpha()


class EmailPattern:
    """The matches of the email regex `[local]+@domain` under `re`, found in time linear in the text.

    `re` tries the plain regex at every start inside a run of local-part characters and scans the run to
    its end each time: quadratic (`"a" * 100_000 + "@x"` took 10 s). Here a local part starts only where a
    run starts (one scan per run), or right where the previous match ended: the one place inside a run
    where the plain regex can start and the run-start form cannot (`a@b.co.x@y.io` is two emails).
    Starting later inside a run never matters: it reaches the same `@` and domain with a shorter local
    part. The domain is the plain regex's: its labels are split by `.` and it stops at the next `@`, so it
    backtracks over each character a bounded number of times.
    """

    _LOCAL = r"[A-Za-z0-9._%+\-]"
    _LOCAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
    pattern = _LOCAL + r"+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
    groupindex: Mapping[str, int] = {}

    def __init__(self) -> None:
        self._at_run_start = re.compile(f"(?<!{self._LOCAL}){self.pattern}")
        self._right_here = re.compile(self.pattern)
        # A match can start where another ended inside a run only if two `@` are linked by such a run.
        self._linked_ats = re.compile(f"@{self._LOCAL}+@")

    def finditer(self, string: str) -> Iterator[re.Match[str]]:
        """The plain regex's matches, left to right."""
        right_here, local, pos = self._right_here.match, self._LOCAL_CHARS, 0
        while (found := self._at_run_start.search(string, pos)) is not None:
            while found is not None:
                yield found
                pos = found.end()
                found = right_here(string, pos) if string[pos : pos + 1] in local else None

    def sub(self, repl: Replacer, string: str) -> str:
        """`string` with each match replaced by `repl(match)`, as `re.Pattern.sub` does."""
        if self._linked_ats.search(string) is None:  # the common case, at the speed of `re.sub`
            return self._at_run_start.sub(repl, string)
        parts: list[str] = []
        last = 0
        for found in self.finditer(string):
            parts += (string[last : found.start()], repl(found))
            last = found.end()
        parts.append(string[last:])
        return "".join(parts)


_W = r"A-Za-z0-9"
BUILTIN_RULES: tuple[Rule, ...] = (
    Rule("anthropic_key", re.compile(rf"(?<![{_W}])sk-ant-[{_W}_\-]{{20,}}"), triggers=("sk-ant-",)),
    Rule(
        "openai_key",
        re.compile(rf"(?<![{_W}])sk-(?!ant-)(?:proj-|svcacct-|admin-)?[{_W}_\-]{{20,}}"),
        triggers=("sk-",),
    ),
    Rule(
        "aws_key",
        re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])"),
        triggers=("AKIA", "ASIA", "ABIA", "ACCA"),
    ),
    Rule(
        "aws_secret",
        re.compile(
            r"(?i:aws_?secret_?access_?key|secret_?access_?key)[\"']?\s*[:=]\s*[\"']?"
            r"(?P<v>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
        triggers=("ecret", "ECRET"),
    ),
    Rule(
        "github_token",
        re.compile(rf"(?<![{_W}])(?:gh[pousr]_[{_W}]{{36,255}}|github_pat_[{_W}_]{{22,255}})"),
        triggers=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    Rule(
        "bearer_token",
        re.compile(r"(?i:\bbearer)\s+(?P<v>[A-Za-z0-9\-._~+/]{12,}=*)"),
        triggers=("earer", "EARER"),
        valid=_token_like,
    ),
    Rule("email", EmailPattern(), triggers=("@",), normalize=str.lower),
    Rule(
        "card",
        # Written to start with \d (then look behind) so that `re` can skip to digits quickly.
        re.compile(r"\d(?<!\d\d)\d{3}(?:\d{9,15}|(?:[ -]\d{4}){2}[ -]\d{1,7}|[ -]\d{6}[ -]\d{4,5})(?!\d)"),
        needs_digits=True,
        valid=_card_valid,
        normalize=_only_digits,
    ),
    Rule(
        "phone",
        re.compile(
            r"[+(\d](?<![\w+][+(\d])"  # starts with a set so `re` skips ahead fast; not glued to a word
            r"(?:(?<=\+)\d{8,15}"  # +442079460958
            r"|(?:(?<=\+)\d{1,3}[ .\-]?)?(?:(?<=\()\d{1,4}\)[ .\-]?)?\d{0,4}(?:[ .\-]\d{2,4}){1,4})"
            r"(?!\w)"
        ),
        needs_digits=True,
        valid=_phone_valid,
        normalize=_only_digits,
    ),
)

_MIN_DIGITS = 9  # the fewest digits of a phone number; card numbers have 13
_MIN_LEN = 6  # the shortest secret we look for, `a@b.co`
# Binary payloads are not text: scanning base64 would only corrupt images and cost time.
_BINARY_KEYS = frozenset({"data", "file_data"})
_SKIP_KEYS = frozenset({"signature"})


def parse_user_rule(spec: str) -> Rule:
    """`NAME=REGEX` from the command line into a rule (placeholder `[NAME_1]`)."""
    name, sep, regex = spec.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,39}", name) or not regex:
        raise ConfigError(
            f"--redact-pattern: expected NAME=REGEX with NAME like [A-Za-z][A-Za-z0-9_]*, found {spec!r}"
        )
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        raise ConfigError(
            f"--redact-pattern {name}: expected a Python regular expression, found {exc}"
        ) from None
    if pattern.search(""):
        raise ConfigError(f"--redact-pattern {name}: expected a regex that cannot match the empty string")
    return Rule(name.lower(), pattern)


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


class Redactor:
    """Replaces secrets and personal data in JSON values; user rules run first, then the built-in ones."""

    def __init__(self, user_rules: Iterable[Rule] = (), *, builtin: bool = True) -> None:
        self.rules: tuple[Rule, ...] = (*user_rules, *(BUILTIN_RULES if builtin else ()))
        # One pass over the text finds which rules' triggers occur (longest first: `sk-ant-` before `sk-`).
        triggers = sorted({t for rule in self.rules for t in rule.triggers}, key=len, reverse=True)
        self._triggers = re.compile("|".join(map(re.escape, triggers))) if triggers else None

    def redact_capture(self, request: dict[str, Any], response: dict[str, Any] | None) -> Redacted:
        """Redact a capture's request and response with one scope, so placeholders agree across both."""
        scope = _Scope()
        slots: list[tuple[Any, Any]] = []
        new_request, new_response = _copy([request, response], slots)
        if slots:
            self._redact_slots(slots, scope)
        return Redacted(new_request, new_response, dict(sorted(scope.counts.items())))

    def redact_text(self, text: str) -> tuple[str, dict[str, int]]:
        """Redact one string (for tests and tools); placeholders numbered from 1."""
        scope = _Scope()
        rules = [(rule, _replacer(rule, scope)) for rule in self.rules]
        return self._text(text, rules, _digit_counts([text])[0] >= _MIN_DIGITS), scope.counts

    def _redact_slots(self, slots: list[tuple[Any, Any]], scope: _Scope) -> None:
        """Redact the strings at `slots` (container, key) in place, in walk order."""
        texts = [container[key] for container, key in slots]
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
        for (container, key), text, enough_digits in zip(slots, texts, digits, strict=True):
            new = self._text(text, rules, enough_digits)
            if new is not text:
                container[key] = new

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


def _copy(value: Any, slots: list[tuple[Any, Any]]) -> Any:
    """A copy of the JSON containers in `value`; where each string to scan sits is added to `slots`.

    Skipped, and shared with the input: thinking signatures, base64 payloads, data URLs.
    """
    if isinstance(value, dict):
        binary = value.get("type") == "base64" or "file_data" in value
        out: dict[str, Any] = {}
        for k, v in value.items():
            out[k] = v
            if k in _SKIP_KEYS or (binary and k in _BINARY_KEYS):
                continue
            if isinstance(v, str):
                if len(v) >= _MIN_LEN and not _is_data_url(v):
                    slots.append((out, k))
            elif isinstance(v, _CONTAINERS):
                out[k] = _copy(v, slots)
        return out
    items = list(value)
    for i, v in enumerate(items):
        if isinstance(v, str):
            if len(v) >= _MIN_LEN:
                slots.append((items, i))
        elif isinstance(v, _CONTAINERS):
            items[i] = _copy(v, slots)
    return items


_CONTAINERS = (dict, list)  # a tuple: isinstance is faster with it than with `dict | list`


def _is_data_url(value: str) -> bool:
    return value.startswith("data:") and ";base64," in value[:200]


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
