"""Providers by name: `@register_provider("name")` on a class taking a ProviderConfig, with a `name` and the
`api` it speaks (`shadowlab.apis`). Adding a vendor touches one file, plus one line in `_BUILTINS` (and, for
its own base URL and key, the settings `<name>_base_url` and `<name>_api_key` in `shadowlab.config`)."""

from __future__ import annotations

import functools
import gc
import importlib
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from pydantic import SecretStr

from shadowlab.apis import Api
from shadowlab.config import Settings
from shadowlab.errors import ConfigError
from shadowlab.providers.base import Provider, ProviderConfig

__all__ = [
    "ProviderFactory",
    "UnknownProviderError",
    "config_from_settings",
    "create_provider",
    "provider_api",
    "provider_names",
    "register_provider",
    "settle_heap",
]


class ProviderFactory(Protocol):
    """A provider class: called with a ProviderConfig, it says which API it speaks."""

    @property
    def api(self) -> Api: ...

    def __call__(self, config: ProviderConfig) -> Provider: ...


_REGISTRY: dict[str, ProviderFactory] = {}
# Built-in providers, imported on first lookup (the SDKs are heavy; a process using one need not load both).
_BUILTINS = {
    "anthropic": "shadowlab.providers.anthropic",
    "openai": "shadowlab.providers.openai_compat",
    "openai_responses": "shadowlab.providers.openai_responses",
}
_F = TypeVar("_F", bound=ProviderFactory)


class UnknownProviderError(ConfigError):
    """An arm names a provider no one registered."""


def register_provider(name: str) -> Callable[[_F], _F]:
    """Class decorator: make `name` create this provider."""

    def decorate(factory: _F) -> _F:
        _REGISTRY[name] = factory
        return factory

    return decorate


def _factory(name: str) -> ProviderFactory:
    if name not in _REGISTRY and name in _BUILTINS:
        importlib.import_module(_BUILTINS[name])
    factory = _REGISTRY.get(name)
    if factory is None:
        raise UnknownProviderError(f"provider: expected one of {', '.join(provider_names())}, found {name!r}")
    return factory


def provider_names() -> tuple[str, ...]:
    """Every provider name that `create_provider` accepts."""
    return tuple(sorted(set(_REGISTRY) | set(_BUILTINS)))


def create_provider(name: str, config: ProviderConfig) -> Provider:
    """A provider instance; UnknownProviderError names the known ones. The first one a process creates also
    takes what is alive then out of the cyclic collector's sight (`settle_heap`)."""
    provider = _factory(name)(config)
    settle_heap()
    return provider


@functools.cache  # once per process
def settle_heap() -> None:
    """Once per process: move every object alive now (the SDKs' and pydantic's import-time modules, classes
    and schemas: ~180k in the replayer or the bench client) into the collector's permanent generation.
    A full collection walked them all — 87-107 ms of CPU in the bench's client — and a stream whose first
    token arrived during that pass read it that much late: our own pause inside the provider's TTFT. Frozen,
    a full pass walks only what calls allocate (4.8 ms in the same run). Reference counting still frees them;
    only a reference cycle made of objects alive now would never be collected."""
    gc.freeze()


def provider_api(name: str) -> Api:
    """The API shape provider `name` speaks (a capture of that API is replayed with its body as captured)."""
    return _factory(name).api


def config_from_settings(name: str, settings: Settings, **overrides: Any) -> ProviderConfig:
    """The base URL and key of a provider from the settings `<name>_base_url` and `<name>_api_key` (none
    when the settings have no such field; a provider class may name another provider's settings with a
    `settings_name` attribute, as `openai_responses` uses `openai`'s); `overrides` win."""
    prefix = getattr(_factory(name), "settings_name", name) if name in provider_names() else name
    base_url: str | None = getattr(settings, f"{prefix}_base_url", None)
    api_key: SecretStr | None = getattr(settings, f"{prefix}_api_key", None)
    fields: dict[str, Any] = {"base_url": base_url, "api_key": api_key, **overrides}
    return ProviderConfig(**fields)
