"""Synthetic production traffic: several services and routes, multi-turn conversations, tool use,
both APIs, some PII for the redactor and some malformed messages for the dead-letter path.

Deterministic by seed. Each route has a known difficulty (`ROUTES`), which the demo's simulator
profiles turn into the built-in truth the verdict is checked against.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from shadowlab.apis import Api

Difficulty = Literal["easy", "hard"]


@dataclass(frozen=True)
class Route:
    service: str
    route: str
    difficulty: Difficulty
    api: Api
    weight: float
    system: str
    asks: tuple[str, ...]


ROUTES: tuple[Route, ...] = (
    Route(
        "support-bot",
        "faq",
        "easy",
        "anthropic.messages",
        0.30,
        "You are a friendly support agent for Acme Cloud. Answer briefly.",
        (
            "How do I reset my password for {topic}?",
            "Where can I download invoices for {topic}?",
            "What are the opening hours of {topic} support?",
        ),
    ),
    Route(
        "support-bot",
        "troubleshoot",
        "hard",
        "anthropic.messages",
        0.20,
        "You are a senior support engineer. Diagnose step by step before answering.",
        (
            "My {topic} deployment fails with a timeout after the upgrade, logs attached. Why?",
            "Requests to {topic} return 502 only under load; what could cause it?",
        ),
    ),
    Route(
        "code-assist",
        "explain",
        "easy",
        "anthropic.messages",
        0.20,
        "You explain code to developers in plain words.",
        (
            "Explain what this {topic} function does: def f(xs): return sorted(set(xs))",
            "What does the {topic} flag --dry-run do?",
        ),
    ),
    Route(
        "code-assist",
        "refactor",
        "hard",
        "openai.chat",
        0.15,
        "You refactor code without changing behaviour and explain every change.",
        (
            "Refactor this {topic} module to remove the global state and keep the API stable.",
            "Rewrite the {topic} retry loop with exponential backoff and jitter, preserving semantics.",
        ),
    ),
    Route(
        "search",
        "summarise",
        "easy",
        "openai.chat",
        0.15,
        "Summarise the user's document in three bullet points.",
        (
            "Summarise the {topic} release notes for a product manager.",
            "Summarise this {topic} incident report in plain words.",
        ),
    ),
)
TOPICS = ("billing", "kafka", "postgres", "the mobile app", "SSO", "the CLI", "webhooks", "exports")
PII = (
    " You can reach me at jane.doe@example.com.",
    " Call me back on +1 415 555 0132.",
    " My card 4111 1111 1111 1111 was charged twice.",
    " Our key sk-ant-api03-Zx9fakefakefakefakefakefake1234 leaked, rotate it?",
)
WEATHER_TOOL = {
    "name": "lookup_status",
    "description": "Look up the live status of a service component.",
    "input_schema": {
        "type": "object",
        "properties": {"component": {"type": "string"}},
        "required": ["component"],
    },
}
MALFORMED = (
    b"{not json",
    b'{"schema_version": 2, "request_id": "future-1"}',
    b'["an", "array"]',
    b'{"schema_version": 1, "request_id": "missing-source", "captured_at": "2026-11-20T10:00:00+00:00"}',
    b"\xff\xfe not utf-8",
)


@dataclass(frozen=True)
class TrafficSpec:
    n_captures: int = 600
    seed: int = 1
    pii_rate: float = 0.08
    tool_rate: float = 0.15
    multi_turn_rate: float = 0.35
    malformed_every: int = 97
    start: datetime = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _user_hash(rng: random.Random) -> str:
    return hashlib.sha256(f"user-{rng.randrange(200)}".encode()).hexdigest()[:16]


def _anthropic_body(route: Route, turns: list[tuple[str, str]], ask: str, tools: bool) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for user, assistant in turns:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    if tools:
        messages += [
            {"role": "user", "content": ask},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_demo01",
                        "name": "lookup_status",
                        "input": {"component": "api"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_demo01",
                        "content": "api: degraded since 09:12",
                    }
                ],
            },
        ]
    else:
        messages.append({"role": "user", "content": [{"type": "text", "text": ask}]})
    body: dict[str, Any] = {
        "model": "sim-sonnet",
        "max_tokens": 400,
        "system": route.system,
        "messages": messages,
    }
    if tools:
        body["tools"] = [WEATHER_TOOL]
    return body


def _openai_body(route: Route, turns: list[tuple[str, str]], ask: str) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": route.system}]
    for user, assistant in turns:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    messages.append({"role": "user", "content": ask})
    return {"model": "sim-sonnet", "max_completion_tokens": 400, "messages": messages}


def generate(spec: TrafficSpec) -> Iterator[bytes]:
    """Yield the capture messages (UTF-8 JSON), malformed ones included, in capture order."""
    rng = random.Random(spec.seed)
    weights = [r.weight for r in ROUTES]
    conversations: dict[str, list[tuple[str, str]]] = {}
    for i in range(spec.n_captures):
        if spec.malformed_every and i % spec.malformed_every == spec.malformed_every - 1:
            yield MALFORMED[(i // spec.malformed_every) % len(MALFORMED)]
        route = rng.choices(ROUTES, weights)[0]
        ask = rng.choice(route.asks).format(topic=rng.choice(TOPICS))
        if rng.random() < spec.pii_rate:
            ask += rng.choice(PII)
        conversation_id = f"conv-{spec.seed}-{rng.randrange(spec.n_captures // 3 + 1)}"
        turns = conversations.get(conversation_id, []) if rng.random() < spec.multi_turn_rate else []
        tools = route.api == "anthropic.messages" and rng.random() < spec.tool_rate
        if route.api == "anthropic.messages":
            body = _anthropic_body(route, turns[-3:], ask, tools)
        else:
            body = _openai_body(route, turns[-3:], ask)
        answer = f"Here is what to do about {ask.split()[-1].strip('?.')}."
        conversations[conversation_id] = [*turns, (ask, answer)]
        ttft = round(rng.lognormvariate(6.0, 0.35), 1)
        capture = {
            "schema_version": 1,
            "request_id": f"demo-{spec.seed}-{i:06d}",
            "captured_at": (spec.start + timedelta(seconds=37 * i)).isoformat(),
            "source": {
                "service": route.service,
                "route": route.route,
                "environment": "production",
                "conversation_id": conversation_id,
                "user_hash": _user_hash(rng),
                "tags": {"plan": rng.choice(("free", "pro")), "difficulty": route.difficulty},
            },
            "api": route.api,
            "request": body,
            "response": {
                "text": answer,
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 40 + 30 * len(turns), "output_tokens": 60},
                "ttft_ms": ttft,
                "latency_ms": round(ttft + rng.uniform(300, 1500), 1),
            },
        }
        yield json.dumps(capture, separators=(",", ":")).encode()


def write_jsonl(spec: TrafficSpec, path: Path) -> int:
    """Write the stream to a JSONL file (one message a line); return the number of lines."""
    lines = 0
    with path.open("wb") as out:
        for message in generate(spec):
            out.write(message.replace(b"\n", b" ") + b"\n")
            lines += 1
    return lines
