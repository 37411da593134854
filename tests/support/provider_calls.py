"""One call through a fresh provider, and the httpx flavour a provider's transport must come from."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import httpx

from shadowlab.apis.internal import NormalizedRequest
from shadowlab.providers import ProviderConfig, ProviderResult, create_provider


def complete_once(
    name: str,
    config: ProviderConfig,
    request: NormalizedRequest | dict[str, Any],
    headers: Mapping[str, str] | None = None,
) -> ProviderResult:
    """`complete(request)` on a provider built for this call, closed after it; a dict is a body in the
    provider's own API shape (`complete_raw`)."""
    provider = create_provider(name, config)

    async def run() -> ProviderResult:
        try:
            if isinstance(request, dict):
                return await provider.complete_raw(request, extra_headers=headers)
            return await provider.complete(request, extra_headers=headers)
        finally:
            await provider.aclose()

    return asyncio.run(run())


def httpx_of(name: str) -> ModuleType:
    """The httpx flavour provider `name` sends through (the Anthropic SDK ships its own): MockTransport,
    Response and the byte-stream base class of a test's transport come from it."""
    if name != "anthropic":
        return httpx
    from shadowlab.providers.anthropic import SDK_HTTPX

    return SDK_HTTPX
