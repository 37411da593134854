"""Where redaction looks in a capture: a copy of its JSON containers, with where each string, key and long
number to scan sits (`Slots`); binary payloads and thinking signatures are skipped."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_MIN_LEN = 6  # the shortest secret we look for, `a@b.co`
# Binary payloads are not text: scanning base64 would only corrupt images and cost time.
_BINARY_KEYS = frozenset({"data", "file_data"})
_SKIP_KEYS = frozenset({"signature"})

# Source fields that hold free text a person may have typed (route and service are code, user_hash a hash).
SOURCE_FIELDS = ("route", "conversation_id", "tags")
_LONG_NUMBER = 10**8  # a number with 9+ digits may be a phone or card number written as JSON


@dataclass
class Slots:
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
    plain = _PLAIN_KEYS.get(key)
    if plain is None:
        plain = key.replace("_", "").isalpha()
        if len(key) <= 64 and len(_PLAIN_KEYS) < 4096:  # field names repeat; free-form keys must not grow it
            _PLAIN_KEYS[key] = plain
    return plain


_PLAIN_KEYS: dict[str, bool] = {}


def copy_with_slots(value: Any, slots: Slots) -> Any:
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


def _slot(container: Any, key: Any, v: Any, slots: Slots) -> None:
    if isinstance(v, str):
        if len(v) >= _MIN_LEN and not (v.startswith("data:") and _is_data_url(v)):
            slots.strings.append((container, key))
    elif isinstance(v, _CONTAINERS):
        container[key] = copy_with_slots(v, slots)
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
