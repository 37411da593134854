"""Providers by name: `@register_provider("name")` on a class taking a ProviderConfig; adding a vendor touches
one file (plus one line in `_BUILTINS`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import SecretStr

from shadowlab.config import Settings
from shadowlab.errors import ConfigError
from shadowlab.providers.base import Provider, ProviderConfig

__all__ = [
    "UnknownProviderError",
    "config_from_settings",
    "create_provider",
    "provider_names",
    "register_provider",
]

ProviderFactory = Callable[[ProviderConfig], Provider]
_REGISTRY: dict[str, ProviderFactory] = {}
# Built-in providers, imported on first lookup (the SDKs are heavy; a process using one need not load both).
_BUILTINS = {"anthropic": "shadowlab.providers.anthropic", "openai": "shadowlab.providers.openai_compat"}
_F = TypeVar("_F", bound=Callable[..., Any])


class UnknownProviderError(ConfigError):
    """An arm names a provider no one registered."""


def register_provider(name: str) -> Callable[[_F], _F]:
    """Class decorator: make `name` create this provider."""

    def decorate(factory: _F) -> _F:
        _REGISTRY[name] = factory
        return factory

    return decorate


def _load(name: str) -> None:
    if name not in _REGISTRY and name in _BUILTINS:
        importlib.import_module(_BUILTINS[name])


def provider_names() -> tuple[str, ...]:
    """Every provider name that `create_provider` accepts."""
    return tuple(sorted(set(_REGISTRY) | set(_BUILTINS)))


def create_provider(name: str, config: ProviderConfig) -> Provider:
    """A provider instance; UnknownProviderError names the known ones."""
    _load(name)
    factory = _REGISTRY.get(name)
    if factory is None:
        raise UnknownProviderError(f"provider: expected one of {', '.join(provider_names())}, found {name!r}")
    return factory(config)


def config_from_settings(name: str, settings: Settings, **overrides: Any) -> ProviderConfig:
    """The base URL and key of a built-in provider from the settings; `overrides` win."""
    base_url: str | None = None
    api_key: SecretStr | None = None
    if name == "anthropic":
        base_url, api_key = settings.anthropic_base_url, settings.anthropic_api_key
    elif name == "openai":
        base_url, api_key = settings.openai_base_url, settings.openai_api_key
    fields: dict[str, Any] = {"base_url": base_url, "api_key": api_key, **overrides}
    return ProviderConfig(**fields)
