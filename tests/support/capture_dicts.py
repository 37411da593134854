"""Captures for the capture-schema tests: the real request bodies in tests/shadowlab/data, a schema-v1
capture of one as a dict, and its bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "shadowlab" / "data"
BODIES = sorted(p.stem for p in DATA.glob("*.json"))


def body(name: str) -> dict[str, Any]:
    """The request body `name` of tests/shadowlab/data."""
    loaded: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return loaded


def capture_dict(name: str = "anthropic_tool_use", **fields: Any) -> dict[str, Any]:
    """A valid schema-v1 capture of request body `name`, with `fields` replaced."""
    api = "anthropic.messages" if name.startswith("anthropic") else "openai.chat"
    base = {
        "schema_version": 1,
        "request_id": "req-0001",
        "captured_at": "2025-03-14T09:26:53.589793+01:00",
        "source": {"service": "checkout", "route": "/chat", "tags": {"team": "ml"}},
        "api": api,
        "request": body(name),
        "response": {
            "text": "It is 15 degrees.",
            "stop_reason": "end_turn",
            "ttft_ms": 412.5,
            "latency_ms": 1830,
        },
    }
    return base | fields


def encode(data: Any) -> bytes:
    """`data` as the JSON bytes a producer sends."""
    return json.dumps(data, ensure_ascii=False).encode()
