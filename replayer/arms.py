"""What each arm sends for one captured request.

The captured body itself when the arm speaks the capture's API (so `cache_control` and every other field
survive), else the normalised request, translated by the provider."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shadowlab.apis import api_shape, normalize_request_body
from shadowlab.apis.internal import DEFAULT_MAX_TOKENS, NormalizedRequest
from shadowlab.budget import ArmCall
from shadowlab.models import Arm
from shadowlab.providers import provider_api
from shadowlab.usage import estimate_input_tokens

__all__ = ["ArmRuntime", "PreparedCall", "prepare_call"]


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
    estimate = estimate_input_tokens(body, arm.system)
    if provider_api(arm.provider) == api:
        sent = api_shape(api).with_arm(body, model=arm.model, params=arm.params, system=arm.system)
        return PreparedCall(sent.body, None, sent.max_output_tokens, estimate, sent.notes)
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
