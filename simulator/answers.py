"""Deterministic answers: the same seed, arm, capture and request body always give the same answer.

Two arms (even A/A arms on one model) differ the way sampling would, and so do two captures with the same body
(the replayer names the capture in a header): each replay is a fresh sampling unless the model's profile says
`repeat_identical` (a model served at temperature 0), when the body alone decides. The hidden quality drawn
for each answer sets how much of the prompt's vocabulary it reuses, so judges and checks have a signal.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from simulator.profiles import ModelProfile, mean_quality
from simulator.requests import RequestView

__all__ = ["Answer", "CacheStore", "PlannedToolCall", "answer_key", "plan_answer"]

StopReason = Literal["end_turn", "max_tokens", "tool_use", "stop_sequence"]
_FILLER = (
    "the",
    "result",
    "depends",
    "on",
    "context",
    "and",
    "we",
    "can",
    "consider",
    "several",
    "options",
    "here",
    "first",
    "second",
    "finally",
    "this",
    "means",
    "that",
    "should",
    "work",
    "well",
    "in",
    "practice",
    "given",
    "data",
    "approach",
    "answer",
    "clear",
    "simple",
    "because",
    "it",
    "is",
    "a",
    "good",
    "choice",
    "overall",
)


@dataclass(frozen=True)
class PlannedToolCall:
    id: str
    name: str
    input: dict[str, Any]

    @property
    def arguments(self) -> str:
        return json.dumps(self.input, separators=(",", ":"))


@dataclass(frozen=True)
class Answer:
    """One planned answer, API-neutral; each text/thinking piece is one output token."""

    id: str
    thinking: tuple[str, ...]
    text: tuple[str, ...]
    tool_calls: tuple[PlannedToolCall, ...]
    stop_reason: StopReason
    stop_sequence: str | None
    input_tokens: int  # uncached
    cache_creation_tokens: int
    cache_read_tokens: int
    output_tokens: int  # includes thinking tokens
    reasoning_tokens: int
    quality: float

    @property
    def full_text(self) -> str:
        return "".join(self.text)

    @property
    def full_thinking(self) -> str:
        return "".join(self.thinking)


class CacheStore:
    """Prompt-cache prefixes seen recently (5-minute TTL, like the APIs' default)."""

    def __init__(self, ttl_s: float = 300.0) -> None:
        self._ttl_s = ttl_s
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> bool:
        """True when the prefix was stored and still live; stores or refreshes it either way."""
        now = time.monotonic()
        with self._lock:
            live = self._expiry.get(key, 0.0) > now
            self._expiry[key] = now + self._ttl_s
            return live


def answer_key(seed: int, arm: str, api: str, body: dict[str, Any], capture_id: str | None = None) -> bytes:
    """Digest of what determines an answer; streaming and transport fields do not count.

    Without `capture_id` the digest is the body's alone (every repeat of a body gets the same answer)."""
    content = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    parts: list[Any] = [seed, arm, api, content]
    if capture_id is not None:
        parts.append(capture_id)
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).digest()


def _tool_input(schema: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    names = schema.get("required") or list(properties)
    return {name: _value(properties.get(name) or {}, rng) for name in names}


def _value(schema: dict[str, Any], rng: random.Random) -> Any:
    if schema.get("enum"):
        return rng.choice(schema["enum"])
    kind = schema.get("type")
    if kind == "integer":
        return rng.randint(1, 100)
    if kind == "number":
        return round(rng.uniform(0, 100), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        return [_value(schema.get("items") or {"type": "string"}, rng)]
    if kind == "object":
        return _tool_input(schema, rng)
    return rng.choice(_FILLER) + "-" + str(rng.randint(1, 999))


def _wants_tool(view: RequestView, profile: ModelProfile, rng: random.Random) -> str | None:
    if not view.tools or view.tool_mode == "none":
        return None
    names = [name for name, _ in view.tools]
    if view.tool_mode.startswith("tool:"):
        wanted = view.tool_mode[5:]
        return wanted if wanted in names else names[0]
    if view.tool_mode == "any" or (not view.after_tool_result and rng.random() < profile.tool_call_rate):
        return rng.choice(names)
    return None


def plan_answer(view: RequestView, profile: ModelProfile, key: bytes, cache: CacheStore) -> Answer:
    """The answer to one request: text, optional thinking and tool call, usage, hidden quality."""
    rng = random.Random(key)
    answer_id = key[:12].hex()
    quality = min(max(rng.gauss(mean_quality(profile, view.prompt_words), profile.quality_sd), 0.0), 1.0)
    budget = max(view.max_tokens, 1)
    thinking = (
        tuple(f" {rng.choice(_FILLER)}" for _ in range(profile.thinking_tokens)) if view.thinking else ()
    )
    thinking = thinking[: max(budget - 1, 0)]
    tool = _wants_tool(view, profile, rng)
    wanted = 12 if tool else round(profile.output_tokens.sample(rng))
    words = view.prompt_words or _FILLER
    text = [f"Answer {answer_id}:"]
    while len(text) < wanted:
        source = words if rng.random() < quality else _FILLER
        text.append(f" {rng.choice(source)}")
    room = budget - len(thinking)
    stop: StopReason = "tool_use" if tool else "end_turn"
    stop_sequence = None
    joined = "".join(text)
    for sequence in view.stop_sequences:
        if sequence and sequence in joined:
            cut = joined.index(sequence)
            text, stop, stop_sequence, tool = _cut(text, cut), "stop_sequence", sequence, None
            joined = "".join(text)
    if len(text) > room:
        text, stop, tool = text[:room], "max_tokens", None
    calls: tuple[PlannedToolCall, ...] = ()
    if tool:
        schema = dict(view.tools)[tool]
        calls = (PlannedToolCall(f"toolu_{rng.getrandbits(64):016x}", tool, _tool_input(schema, rng)),)
    tool_tokens = sum(len(call.arguments) // 4 + 5 for call in calls)
    created = read = 0
    if view.cache_prefix_key and view.cache_prefix_tokens >= profile.cache_min_tokens:
        prefix = view.cache_prefix_tokens
        if view.api != "anthropic":
            prefix -= prefix % 128  # OpenAI caches in 128-token steps and never reports creation
            read = prefix if cache.hit(view.model + view.cache_prefix_key) else 0
        elif cache.hit(view.model + view.cache_prefix_key):
            read = prefix
        else:
            created = prefix
    return Answer(
        id=answer_id,
        thinking=thinking,
        text=tuple(text),
        tool_calls=calls,
        stop_reason=stop,
        stop_sequence=stop_sequence,
        input_tokens=view.input_tokens - created - read,
        cache_creation_tokens=created,
        cache_read_tokens=read,
        output_tokens=len(thinking) + len(text) + tool_tokens,
        reasoning_tokens=len(thinking),
        quality=quality,
    )


def _cut(pieces: list[str], at: int) -> list[str]:
    out: list[str] = []
    length = 0
    for piece in pieces:
        if length + len(piece) > at:
            if at > length:
                out.append(piece[: at - length])
            break
        out.append(piece)
        length += len(piece)
    return out
