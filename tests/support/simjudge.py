"""An in-process provider backed by the simulator's judge mode (same verdict logic as over HTTP)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shadowlab.apis.internal import Api, NormalizedRequest, TextBlock
from shadowlab.providers import ProviderResult, ToolCall
from shadowlab.usage import Usage
from simulator.answers import Answer, answer_key
from simulator.judge import JudgeProfile, QualityMemory, judge_answer


def served_answer(index: int, quality: float) -> Answer:
    """An answer as the simulator would have served it: its id as the marker, some words, a hidden quality."""
    answer_id = f"{index:024x}"
    return Answer(
        answer_id,
        (),
        (f"Answer {answer_id}:", " some", " words"),
        (),
        "end_turn",
        None,
        10,
        0,
        0,
        3,
        0,
        quality,
    )


class SimJudgeProvider:
    """`complete` renders the judge request like the Anthropic API body and answers with `judge_answer`."""

    name = "simjudge"
    api: Api = "anthropic.messages"

    def __init__(
        self, memory: QualityMemory, profile: JudgeProfile, headers: Mapping[str, str] | None = None
    ):
        self.memory = memory
        self.profile = profile
        self.headers = dict(headers or {})
        self.calls = 0

    async def complete(
        self,
        request: NormalizedRequest,
        *,
        model: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> ProviderResult:
        self.calls += 1
        text = "".join(b.text for m in request.messages for b in m.content if isinstance(b, TextBlock))
        payload: dict[str, Any] = {
            "model": model or request.model,
            "system": request.system,
            "messages": [{"role": "user", "content": text}],
            "tools": [t.model_dump() for t in request.tools],
        }
        answer = judge_answer(
            payload,
            headers={**self.headers, **(extra_headers or {})},
            profile=self.profile,
            memory=self.memory,
            key=answer_key(0, "", "anthropic", payload),
            input_tokens=len(text) // 4,
        )
        calls = tuple(ToolCall(c.id, c.name, c.input, json.dumps(c.input)) for c in answer.tool_calls)
        usage = Usage(input_tokens=answer.input_tokens, output_tokens=answer.output_tokens)
        return ProviderResult(
            provider=self.name, model=payload["model"], text=answer.full_text, tool_calls=calls, usage=usage
        )

    async def complete_raw(
        self,
        body: Mapping[str, Any],
        *,
        untranslated: tuple[str, ...] = (),
        extra_headers: Mapping[str, str] | None = None,
    ) -> ProviderResult:
        """Judges are asked through `complete`; nothing replays a captured body to this provider."""
        raise NotImplementedError("SimJudgeProvider answers judge requests (complete), not raw bodies")

    async def aclose(self) -> None:
        return None
