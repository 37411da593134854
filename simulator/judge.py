"""Judge mode: a model named `sim-judge*` answers judge prompts with verdicts derived from hidden quality.

How the judge knows the truth: every answer the simulator serves starts with `Answer <24 hex>:`; the simulator
remembers marker → hidden quality (`QualityMemory`). A judge request shows answers inside `<answer>`,
`<answer_a>` and `<answer_b>` tags (the scoring package's prompts do); the judge finds each section's marker
and looks its quality up. An unknown marker (e.g. the simulator restarted) falls back to an estimate from the
text: the share of words that are not filler, which is what the hidden quality controls.

Verdicts, with noise drawn from a RNG seeded by the judge request (so the same request gets the same verdict
whatever the bias, which lets tests compare a biased judge against the same judge unbiased):
- pointwise: score = round(1 + 9 * (quality + noise)), clipped to 1..10;
- pairwise: latent = q_first − q_second + noise + position_bias; "A" above `tie_margin`, "B" below −margin,
  else "tie". A positive bias favours whichever answer is shown first.
The verdict is a call of the request's first tool when tools are offered (fields `score`/`winner` and
`rationale`), else a JSON object as text. Headers override the simulator's `JudgeProfile` per request.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from simulator.answers import _FILLER, Answer, PlannedToolCall

__all__ = [
    "HEADER_JUDGE_BIAS",
    "HEADER_JUDGE_GARBLE",
    "HEADER_JUDGE_NOISE",
    "JUDGE_MODEL_PREFIX",
    "JudgeProfile",
    "PairVerdict",
    "QualityMemory",
    "is_judge_model",
    "judge_answer",
    "pairwise_verdict",
    "pointwise_score",
]

JUDGE_MODEL_PREFIX = "sim-judge"
HEADER_JUDGE_NOISE = "x-sim-judge-noise"  # sd of the noise added to quality (quality units, 0..1)
HEADER_JUDGE_BIAS = "x-sim-judge-bias"  # position bias in quality units; > 0 favours the first answer
HEADER_JUDGE_GARBLE = "x-sim-judge-garble"  # probability of an answer that does not parse
PairVerdict = Literal["A", "B", "tie"]
_MARKER = re.compile(r"Answer ([0-9a-f]{24}):")
_SECTION = re.compile(r"<(answer(?:_a|_b)?)>(.*?)</\1>", re.DOTALL)
_FILLER_SET = frozenset(_FILLER)
_REMEMBERED = 200_000


@dataclass(frozen=True)
class JudgeProfile:
    """Default judge behaviour of one simulator (headers override it per request)."""

    noise: float = 0.05
    position_bias: float = 0.0
    tie_margin: float = 0.02
    garble_rate: float = 0.0


class QualityMemory:
    """Marker → hidden quality of the answers this simulator served (bounded, oldest forgotten first)."""

    def __init__(self, size: int = _REMEMBERED) -> None:
        self._size = size
        self._qualities: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, answer: Answer) -> None:
        with self._lock:
            self._qualities[answer.id] = answer.quality
            while len(self._qualities) > self._size:
                self._qualities.popitem(last=False)

    def quality_of(self, text: str) -> float:
        """The hidden quality of the answer in `text` (remembered, else estimated from its words)."""
        found = _MARKER.search(text)
        if found:
            with self._lock:
                known = self._qualities.get(found.group(1))
            if known is not None:
                return known
        words = [w.strip(".,:;!?").lower() for w in text.split()[1:]]
        words = [w for w in words if w and not _MARKER.match(w)]
        return sum(w not in _FILLER_SET for w in words) / len(words) if words else 0.0


def is_judge_model(model: str) -> bool:
    return model.startswith(JUDGE_MODEL_PREFIX)


def pointwise_score(quality: float, *, noise: float, rng: random.Random) -> int:
    """A 1–10 score for an answer of hidden `quality`."""
    return min(10, max(1, round(1 + 9 * (quality + rng.gauss(0.0, noise)))))


def pairwise_verdict(
    q_first: float,
    q_second: float,
    *,
    noise: float,
    position_bias: float,
    tie_margin: float,
    rng: random.Random,
) -> PairVerdict:
    """Which shown answer wins: "A" (first), "B" (second) or "tie"."""
    latent = q_first - q_second + rng.gauss(0.0, noise) + position_bias
    if latent > tie_margin:
        return "A"
    return "B" if latent < -tie_margin else "tie"


def _float(headers: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(headers[name]) if name in headers else default
    except ValueError:
        return default


def _sections(payload: dict[str, Any]) -> dict[str, str]:
    text = json.dumps(payload.get("messages") or [], ensure_ascii=False)
    return dict(_SECTION.findall(text))


def judge_answer(
    payload: dict[str, Any],
    *,
    headers: Mapping[str, str],
    profile: JudgeProfile,
    memory: QualityMemory,
    key: bytes,
    input_tokens: int,
) -> Answer:
    """The judge's answer to one judge request (an `Answer` the API renderers serve like any other)."""
    rng = random.Random(key)
    noise = _float(headers, HEADER_JUDGE_NOISE, profile.noise)
    bias = _float(headers, HEADER_JUDGE_BIAS, profile.position_bias)
    garble = _float(headers, HEADER_JUDGE_GARBLE, profile.garble_rate)
    sections = _sections(payload)
    verdict: dict[str, Any]
    if "answer_a" in sections and "answer_b" in sections:
        q_a, q_b = memory.quality_of(sections["answer_a"]), memory.quality_of(sections["answer_b"])
        winner = pairwise_verdict(
            q_a, q_b, noise=noise, position_bias=bias, tie_margin=profile.tie_margin, rng=rng
        )
        verdict = {"winner": winner, "rationale": f"simulated judge: quality {q_a:.2f} vs {q_b:.2f}"}
    else:
        quality = memory.quality_of(sections.get("answer", ""))
        score = pointwise_score(quality, noise=noise, rng=rng)
        verdict = {"score": score, "rationale": f"simulated judge: quality {quality:.2f}"}
    answer_id = key[:12].hex()
    if rng.random() < garble:
        return _answer(answer_id, ("I", " think", " both", " are", " fine."), (), input_tokens)
    tools = payload.get("tools") or []
    if tools and isinstance(tools[0], dict):
        name = tools[0].get("name") or (tools[0].get("function") or {}).get("name") or "verdict"
        call = PlannedToolCall(f"toolu_{rng.getrandbits(64):016x}", str(name), verdict)
        return _answer(answer_id, (), (call,), input_tokens)
    return _answer(answer_id, (json.dumps(verdict),), (), input_tokens)


def _answer(
    answer_id: str, text: tuple[str, ...], calls: tuple[PlannedToolCall, ...], input_tokens: int
) -> Answer:
    tool_tokens = sum(len(call.arguments) // 4 + 5 for call in calls)
    return Answer(
        id=answer_id,
        thinking=(),
        text=text,
        tool_calls=calls,
        stop_reason="tool_use" if calls else "end_turn",
        stop_sequence=None,
        input_tokens=input_tokens,
        cache_creation_tokens=0,
        cache_read_tokens=0,
        output_tokens=len(text) + tool_tokens,
        reasoning_tokens=0,
        quality=1.0,
    )
