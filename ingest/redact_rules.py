"""The redaction rules: what a secret or a piece of personal data looks like, and how a match is confirmed.

Built-in rules run in order (secrets before emails before card numbers before phone numbers); each has
cheap triggers (`Rule.triggers`, `needs_digits`) so most strings never reach its regex, and every pattern
runs in time linear in the text (hostile captures: bench/bench_redact.py). `parse_user_rule` reads
`--redact-pattern NAME=REGEX`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

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
    # A match contains one of these (in any case when `ignore_case`): a capture without any skips the rule.
    triggers: tuple[str, ...] = ()
    ignore_case: bool = False
    needs_digits: bool = False
    valid: Check | None = None
    normalize: Callable[[str], str] = str

    @property
    def label(self) -> str:
        return self.kind.upper()

    def holders(self, texts: list[str]) -> list[int] | None:
        """Which of `texts` hold one of the triggers (None: all may match, the rule has no trigger)."""
        if not self.triggers:
            return None
        if self.ignore_case:
            return [i for i, text in enumerate(texts) if any(t in text.lower() for t in self.triggers)]
        if len(self.triggers) == 1:
            (trigger,) = self.triggers
            return [i for i, text in enumerate(texts) if trigger in text]
        return [i for i, text in enumerate(texts) if any(t in text for t in self.triggers)]


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
        self._emails = self._right_here.findall
        # Emails back to back from a run start, as `re` finds them (each starts where the previous ended);
        # possessive: nothing follows, so nothing would be given back (and `re` keeps no state per email).
        self._split_chains = re.compile(f"((?<!{self._LOCAL}){self.pattern}(?:{self.pattern})*+)").split
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

    def split(self, string: str) -> list[str]:
        """`string` cut around the matches, as `re.Pattern.split` cuts it with the match as its one group:
        text, match, text, ..., text."""
        parts = self._split_chains(string)
        if self._linked_ats.search(string) is None:  # the common case: one email per chain
            return parts
        # A chain (emails back to back from a run start) is cut by the plain regex: it starts only where
        # it matches, and an email found in the chain alone is the one found in the whole text.
        out = parts[:1]
        for chain, after in zip(parts[1::2], parts[2::2], strict=True):
            emails = self._emails(chain)
            back_to_back = [""] * (2 * len(emails) - 1)
            back_to_back[::2] = emails
            out += back_to_back
            out.append(after)
        return out

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
_PEM_BODY = r"[A-Za-z0-9+/=\s:,.()]"
_SEP = r"(?:[ .\-]| {2})"  # between a card's groups: a space, two spaces, a dash or a dot
_PHONE_GROUPS = r"[ .\-]\d{2,4}(?:[ .\-]\d{2,4}){0,3}"  # one to four (the first written out: faster)
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
        triggers=("secret",),
        ignore_case=True,
    ),
    Rule(
        "slack_token",
        re.compile(rf"(?<![{_W}])xox[abposrce]-[{_W}\-]{{10,250}}"),
        triggers=("xox",),
    ),
    Rule(
        "slack_webhook",
        re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]{20,200}"),
        triggers=("hooks.slack.com",),
    ),
    Rule("google_api_key", re.compile(r"(?<![A-Za-z0-9_\-])AIza[0-9A-Za-z_\-]{35}"), triggers=("AIza",)),
    Rule(
        "private_key",
        # The body may not hold "--" (a PEM body never does), so each BEGIN's scan stops at the next
        # "-----": linear however many BEGINs a hostile text holds. Nothing the body gives back could start
        # "-----END", so it is possessive, and written as runs of body characters split by single dashes
        # (a class repeated, not an alternation: 60 times faster on 880 KiB).
        re.compile(
            rf"-----BEGIN ([A-Z0-9 ]{{0,40}})PRIVATE KEY-----{_PEM_BODY}*+(?:-(?!-){_PEM_BODY}*+)*+"
            r"-----END \1PRIVATE KEY-----"
        ),
        triggers=("PRIVATE KEY-----",),
    ),
    Rule(
        "github_token",
        re.compile(rf"(?<![{_W}])(?:gh[pousr]_[{_W}]{{36,255}}|github_pat_[{_W}_]{{22,255}})"),
        triggers=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    Rule(
        "bearer_token",
        re.compile(r"(?i:\bbearer)\s+(?P<v>[A-Za-z0-9\-._~+/]{12,}=*)"),
        triggers=("bearer",),
        ignore_case=True,
        valid=_token_like,
    ),
    Rule("email", EmailPattern(), triggers=("@",), normalize=str.lower),
    Rule(
        "card",
        # Written to start with \d (then look behind) so that `re` can skip to digits quickly.
        # Groups split by a space, two spaces, a dash or a dot.
        re.compile(
            rf"\d(?<!\d\d)\d{{3}}(?:\d{{9,15}}|{_SEP}\d{{4}}{_SEP}\d{{4}}{_SEP}\d{{1,7}}"
            r"|(?:[ \-]| {2})\d{6}(?:[ \-]| {2})\d{4,5})(?!\d)"
        ),
        needs_digits=True,
        valid=_card_valid,
        normalize=_only_digits,
    ),
    Rule(
        "phone",
        # One branch per first character (each starts with a literal or a set, so `re` skips ahead fast;
        # not glued to a word): +442079460958, +1 415 555 2671, (415) 555-2671, 415.555.2671.
        re.compile(
            rf"(?:\d(?<![\w+]\d)\d{{0,4}}{_PHONE_GROUPS}"
            rf"|\+(?<![\w+]\+)(?:\d{{8,15}}|(?:\d{{1,3}}[ .\-]?)?\d{{0,4}}{_PHONE_GROUPS})"
            rf"|\((?<![\w+]\()(?:\d{{1,4}}\)[ .\-]?)?\d{{0,4}}{_PHONE_GROUPS})"
            r"(?!\w)"
        ),
        needs_digits=True,
        valid=_phone_valid,
        normalize=_only_digits,
    ),
)


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
