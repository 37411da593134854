"""What both API renderers hand the server: a stream as timed pieces, errors as status and body."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["StreamPlan", "dumps"]


def dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class StreamPlan:
    """A streamed answer: `start` goes out with the head (TTFB), `deltas[0]` at TTFT, the rest paced by the
    tokens each carries, then `end`. `error_event` is what a mid-stream error sends instead of the rest."""

    start: bytes
    deltas: tuple[tuple[bytes, int], ...]
    end: bytes
    error_event: bytes
