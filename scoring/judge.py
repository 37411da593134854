"""LLM judges: pointwise (1–10 score + rationale against a rubric) and pairwise (which of two shown answers).

The verdict comes as a forced tool call (`submit_score` / `submit_verdict`); a JSON object in the text is
accepted too. Anything else is an `unparseable` failure carrying the raw answer, never an exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from scoring.base import FailureKind, PairResult, PairSubject, ScoreResult, Subject, Winner, version_of
from scoring.judge_calls import CallOutcome
from shadowlab.apis.internal import Message, NormalizedRequest, TextBlock, ToolChoice, ToolSpec
from shadowlab.experiment import JUDGE_DEFAULT_PROVIDER
from shadowlab.providers import ProviderResult

__all__ = ["DEFAULT_RUBRIC", "JudgeCall", "JudgeSpec", "PairwiseJudge", "PointwiseJudge"]

DEFAULT_RUBRIC = (
    "Helpfulness: does the answer address what the user asked and move them forward?\n"
    "Correctness: is what it states true and free of errors?\n"
    "Instruction following: does it respect every explicit instruction and constraint in the prompt?"
)
POINTWISE_SYSTEM = (
    "You are an impartial judge of an AI assistant's answer. Read the conversation in <prompt>, the answer "
    "in <answer> and, if given, a reference answer in <reference>. Score the answer from 1 (useless) to 10 "
    "(excellent) against this rubric:\n{rubric}\nBe strict and consistent. Call submit_score with an integer "
    "score and a rationale of at most two sentences."
)
PAIRWISE_SYSTEM = (
    "You are an impartial judge comparing two AI assistant answers to the same conversation. Read <prompt>, "
    "then <answer_a> and <answer_b> (and <reference> if given). Judge them against this rubric:\n{rubric}\n"
    "Ignore the order in which they are shown and their length unless it matters to the user. Call "
    "submit_verdict with winner A, B or tie and a rationale of at most two sentences."
)
_SCORE_TOOL = ToolSpec(
    name="submit_score",
    description="Record the score of the answer.",
    input_schema={
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 1, "maximum": 10},
            "rationale": {"type": "string"},
        },
        "required": ["score", "rationale"],
    },
)
_VERDICT_TOOL = ToolSpec(
    name="submit_verdict",
    description="Record which answer is better.",
    input_schema={
        "type": "object",
        "properties": {
            "winner": {"type": "string", "enum": ["A", "B", "tie"]},
            "rationale": {"type": "string"},
        },
        "required": ["winner", "rationale"],
    },
)
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
JudgeCall = Callable[[NormalizedRequest], Awaitable[CallOutcome]]


class JudgeSpec(BaseModel):
    """One judge from the experiment spec's `scoring.judges` list."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    kind: Literal["pointwise", "pairwise"]
    provider: str = JUDGE_DEFAULT_PROVIDER
    model: str
    rubric: str = DEFAULT_RUBRIC
    prompt: str | None = Field(None, description="System prompt template with {rubric}; default per kind.")
    use_reference: bool = Field(False, description="Show production's answer as a reference.")
    max_tokens: int = Field(512, gt=0)
    # None: the provider's default. (The pinned anthropic SDK 2.12 rejects `temperature` in messages.create.)
    temperature: float | None = Field(None, ge=0)
    extra_headers: dict[str, str] = Field(default_factory=dict)

    @property
    def system_prompt(self) -> str:
        template = self.prompt or (POINTWISE_SYSTEM if self.kind == "pointwise" else PAIRWISE_SYSTEM)
        return template.replace("{rubric}", self.rubric)

    @property
    def version(self) -> str:
        """Changes with anything that changes a verdict: prompt, rubric, model, parameters, headers."""
        return version_of(
            "judge",
            self.kind,
            self.system_prompt,
            self.provider,
            self.model,
            self.use_reference,
            self.max_tokens,
            self.temperature,
            self.extra_headers,
        )

    def request(self, user_text: str, tool: ToolSpec) -> NormalizedRequest:
        return NormalizedRequest(
            source_api="anthropic.messages",
            model=self.model,
            system=self.system_prompt,
            messages=(Message(role="user", content=(TextBlock(text=user_text),)),),
            tools=(tool,),
            tool_choice=ToolChoice(type="tool", name=tool.name),
            temperature=self.temperature,
            max_output_tokens=self.max_tokens,
        )


def _reference(spec: JudgeSpec, reference: str | None) -> str:
    return f"<reference>\n{reference}\n</reference>\n" if spec.use_reference and reference else ""


def _verdict_fields(result: ProviderResult) -> Mapping[str, Any] | None:
    """The verdict object: the first tool call's input, else a JSON object in the text."""
    for call in result.tool_calls:
        if call.input is not None:
            return call.input
    found = _OBJECT.search(result.text)
    if found:
        try:
            data = json.loads(found.group(0))
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
    return None


def _failure_detail(outcome: CallOutcome) -> str:
    if outcome.result is None:
        return "budget exhausted"
    return f"{outcome.result.error_code}: {outcome.result.error_detail or ''}".strip()


class _Judge:
    """What both judges share: the spec (name and version) and the call through limits and budget."""

    def __init__(self, spec: JudgeSpec, call: JudgeCall) -> None:
        self.spec = spec
        self.name = spec.name
        self.version = spec.version
        self._call = call

    @staticmethod
    def _failed(outcome: CallOutcome) -> FailureKind | None:
        """None when the judge answered; else why not (the budget refused it, or the provider failed)."""
        if outcome.result is not None and outcome.result.ok:
            return None
        return "budget" if outcome.budget_refused else "provider"


def _raw_answer(result: ProviderResult) -> str:
    return result.text or json.dumps([c.raw_arguments for c in result.tool_calls])


class PointwiseJudge(_Judge):
    """Scores one answer 1–10 against the rubric."""

    def request_for(self, subject: Subject) -> NormalizedRequest:
        text = (
            f"<prompt>\n{subject.prompt}\n</prompt>\n{_reference(self.spec, subject.reference)}"
            f"<answer>\n{subject.answer}\n</answer>"
        )
        return self.spec.request(text, _SCORE_TOOL)

    async def score(self, subject: Subject) -> ScoreResult:
        outcome = await self._call(self.request_for(subject))
        failure = self._failed(outcome)
        if failure is not None or outcome.result is None:
            return ScoreResult(None, failure=failure, details={"error": _failure_detail(outcome)})
        fields = _verdict_fields(outcome.result) or {}
        score = fields.get("score")
        cost = {"cost_usd": outcome.cost_usd}
        if isinstance(score, bool) or not isinstance(score, int | float) or not 1 <= score <= 10:
            raw = _raw_answer(outcome.result)
            return ScoreResult(
                None,
                failure="unparseable",
                details={"error": "expected an integer score 1-10", "raw": raw[:2000], **cost},
                cost_usd=outcome.cost_usd,
            )
        rationale = str(fields.get("rationale") or "")
        return ScoreResult(float(score), rationale=rationale, details=cost, cost_usd=outcome.cost_usd)


class PairwiseJudge(_Judge):
    """Says which of two shown answers is better ("A" = shown first)."""

    def request_for(self, subject: PairSubject) -> NormalizedRequest:
        text = (
            f"<prompt>\n{subject.prompt}\n</prompt>\n{_reference(self.spec, subject.reference)}"
            f"<answer_a>\n{subject.first}\n</answer_a>\n<answer_b>\n{subject.second}\n</answer_b>"
        )
        return self.spec.request(text, _VERDICT_TOOL)

    async def compare(self, subject: PairSubject) -> PairResult:
        outcome = await self._call(self.request_for(subject))
        failure = self._failed(outcome)
        if failure is not None or outcome.result is None:
            return PairResult(None, failure=failure, detail=_failure_detail(outcome))
        fields = _verdict_fields(outcome.result) or {}
        winner: Winner | None = {"A": "first", "B": "second", "TIE": "tie"}.get(  # type: ignore[assignment]
            str(fields.get("winner", "")).strip().upper()
        )
        if winner is None:
            raw = _raw_answer(outcome.result)
            return PairResult(
                None,
                failure="unparseable",
                detail=f"expected winner A, B or tie: {raw[:500]}",
                cost_usd=outcome.cost_usd,
            )
        return PairResult(winner, rationale=str(fields.get("rationale") or ""), cost_usd=outcome.cost_usd)
