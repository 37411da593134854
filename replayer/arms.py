"""What each arm sends for one captured request.

The captured body itself when the arm speaks the capture's API (so `cache_control` and every other field
survive), else the normalised request, translated by the provider."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from shadowlab.budget import ArmCall, estimate_input_tokens
from shadowlab.models import Arm
from shadowlab.normalize import NormalizedRequest, normalize_request_body
from shadowlab.providers.translate import DEFAULT_MAX_TOKENS

__all__ = ["PROVIDER_APIS", "ArmRuntime", "PreparedCall", "prepare_call"]

PROVIDER_APIS = {"anthropic": "anthropic.messages", "openai": "openai.chat"}
_ANTHROPIC_PARAMS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
                     "max_output_tokens": "max_tokens", "stop_sequences": "stop_sequences"}  # fmt: skip
_OPENAI_PARAMS = {"temperature": "temperature", "top_p": "top_p", "stop_sequences": "stop",
                  "reasoning_effort": "reasoning_effort"}  # fmt: skip


@dataclass(frozen=True)
class ArmRuntime:
    id: int
    name: str
    role: str
    provider: str
    model: str
    params: dict[str, Any]
    system: str | None
    extra_headers: dict[str, str]

    @classmethod
    def of(cls, arm: Arm) -> ArmRuntime:
        template = arm.prompt_template or {}
        return cls(
            arm.id, arm.name, arm.role, arm.provider, arm.model, dict(arm.params),
            template.get("system"), dict(template.get("extra_headers") or {}),
        )  # fmt: skip

    @property
    def limit_key(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True)
class PreparedCall:
    """Either `raw_body` (same API) or `request` (translated by the provider); the output cap is explicit."""

    raw_body: dict[str, Any] | None
    request: NormalizedRequest | None
    max_output_tokens: int
    input_tokens_estimate: int
    notes: tuple[str, ...]

    def arm_call(self, model: str) -> ArmCall:
        return ArmCall(model, self.input_tokens_estimate, self.max_output_tokens)


def prepare_call(arm: ArmRuntime, api: str, body: dict[str, Any]) -> PreparedCall:
    """The call `arm` makes for a request captured as `api` with `body`."""
    estimate = estimate_input_tokens(body) + (len(arm.system) // 2 if arm.system else 0)
    if PROVIDER_APIS.get(arm.provider) == api:
        raw, cap, raw_notes = _same_api(arm, api, body)
        return PreparedCall(raw, None, cap, estimate, raw_notes)
    request = normalize_request_body(api, body)
    update: dict[str, Any] = {"model": arm.model}
    notes: tuple[str, ...] = ()
    for name, value in arm.params.items():
        update[name] = tuple(value) if name == "stop_sequences" else value
    if arm.system is not None:
        update["system"] = arm.system
    if update.get("max_output_tokens", request.max_output_tokens) is None:
        update["max_output_tokens"] = DEFAULT_MAX_TOKENS
        notes = (f"max_tokens missing: set to {DEFAULT_MAX_TOKENS}",)
    request = request.model_copy(update=update)
    assert request.max_output_tokens is not None
    return PreparedCall(None, request, request.max_output_tokens, estimate, notes)


def _same_api(arm: ArmRuntime, api: str, body: dict[str, Any]) -> tuple[dict[str, Any], int, tuple[str, ...]]:
    raw = copy.deepcopy(body)
    raw["model"] = arm.model
    raw.pop("stream", None)
    raw.pop("stream_options", None)
    notes: list[str] = []
    if api == "anthropic.messages":
        for name, value in arm.params.items():
            if name == "thinking_budget_tokens":
                raw["thinking"] = {"type": "enabled", "budget_tokens": value}
            elif name in _ANTHROPIC_PARAMS:
                raw[_ANTHROPIC_PARAMS[name]] = value
            else:
                notes.append(f"param {name}: not sent to the Messages API")
        if arm.system is not None:
            raw["system"] = arm.system
        raw.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        return raw, int(raw["max_tokens"]), tuple(notes)
    for name, value in arm.params.items():
        if name == "max_output_tokens":
            raw.pop("max_tokens", None)
            raw["max_completion_tokens"] = value
        elif name in _OPENAI_PARAMS:
            raw[_OPENAI_PARAMS[name]] = value
        else:
            notes.append(f"param {name}: not sent to chat completions")
    if arm.system is not None:
        kept = [m for m in raw.get("messages", []) if m.get("role") not in ("system", "developer")]
        raw["messages"] = [{"role": "system", "content": arm.system}, *kept]
    cap = raw.get("max_completion_tokens") or raw.get("max_tokens")
    if cap is None:
        raw["max_completion_tokens"] = cap = DEFAULT_MAX_TOKENS
        notes.append(f"max_tokens missing: set to {DEFAULT_MAX_TOKENS}")
    return raw, int(cap), tuple(notes)
