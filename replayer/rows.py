"""The replay row of one arm's call: what `writes.complete` writes for it (one per (arm, request))."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from replayer.arms import ArmRuntime
from shadowlab.models import utcnow
from shadowlab.pricing import PriceTable
from shadowlab.providers import ProviderResult

__all__ = ["replay_row"]


def replay_row(
    experiment_id: int,
    arm: ArmRuntime,
    captured_request_id: int,
    result: ProviderResult | None,
    attempts: int,
    started: datetime,
    prices: PriceTable,
    *,
    notes: tuple[str, ...] = (),
    error: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The row of a call that ended with `result` after `attempts`, or of one never sent (`error`)."""
    usage = result.usage if result else None
    code, detail = error or ((result.error_code, result.error_detail) if result else (None, None))
    return {
        "experiment_id": experiment_id, "arm_id": arm.id, "captured_request_id": captured_request_id,
        "status": "error" if code else "ok", "answer_text": result.text if result else None,
        "tool_calls": [c.__dict__ for c in result.tool_calls] if result else None,
        "stop_reason": result.stop_reason if result else None,
        "ttfb_ms": result.ttfb_ms if result else None, "ttft_ms": result.ttft_ms if result else None,
        "latency_ms": result.ttlt_ms if result else None,
        "input_tokens": usage.input_tokens if usage else 0,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens if usage else 0,
        "cache_read_input_tokens": usage.cache_read_input_tokens if usage else 0,
        "output_tokens": usage.output_tokens if usage else 0,
        "reasoning_tokens": (usage.reasoning_tokens or 0) if usage else 0,
        "cost_usd": prices.cost(arm.model, usage) if usage else 0.0,
        "error_code": code, "error_detail": detail,
        "untranslated": list(result.untranslated if result else notes),
        "attempts": max(attempts, 1), "started_at": started, "finished_at": utcnow(),
    }  # fmt: skip
