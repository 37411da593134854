"""Model APIs behind one Protocol: Anthropic (official SDK), OpenAI-compatible chat completions and the OpenAI
Responses API (httpx).
What each API's bodies look like (translation, usage) is in `shadowlab.apis`; here is how they are sent.

`create_provider(name, config)` builds one; `ProviderResult` is what every call returns; error codes and
their meaning are in `base.ErrorCode` and docs/providers.md.
"""

from shadowlab.providers.base import (
    ERROR_CODES,
    RETRYABLE_ERRORS,
    ErrorCode,
    Provider,
    ProviderConfig,
    ProviderResult,
    StreamingProvider,
    ToolCall,
)
from shadowlab.providers.registry import (
    UnknownProviderError,
    config_from_settings,
    create_provider,
    provider_api,
    provider_names,
    register_provider,
)

__all__ = [
    "ERROR_CODES",
    "RETRYABLE_ERRORS",
    "ErrorCode",
    "Provider",
    "ProviderConfig",
    "ProviderResult",
    "StreamingProvider",
    "ToolCall",
    "UnknownProviderError",
    "config_from_settings",
    "create_provider",
    "provider_api",
    "provider_names",
    "register_provider",
]
