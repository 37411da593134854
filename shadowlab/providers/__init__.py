"""Model APIs behind one Protocol: Anthropic (official SDK) and OpenAI-compatible chat completions (httpx).

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
    ToolCall,
)
from shadowlab.providers.registry import (
    UnknownProviderError,
    config_from_settings,
    create_provider,
    provider_names,
    register_provider,
)
from shadowlab.providers.translate import TargetApi, Translation, to_anthropic, to_openai, translate

__all__ = [
    "ERROR_CODES",
    "RETRYABLE_ERRORS",
    "ErrorCode",
    "Provider",
    "ProviderConfig",
    "ProviderResult",
    "TargetApi",
    "ToolCall",
    "Translation",
    "UnknownProviderError",
    "config_from_settings",
    "create_provider",
    "provider_names",
    "register_provider",
    "to_anthropic",
    "to_openai",
    "translate",
]
