"""Cost in USD from normalised usage, every token class (DESIGN §6).

Prices are USD per token in LiteLLM's `model_prices_and_context_window.json` format. The shipped
`prices.json` can be overridden per model by a user file (`SHADOWLAB_PRICES_FILE`). A model without a price is
an error, never a silent $0. `PriceTable.to_json()` is what an experiment snapshots when it starts.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from shadowlab.errors import ConfigError, ShadowlabError
from shadowlab.usage import Usage

__all__ = [
    "LONG_CONTEXT_THRESHOLD",
    "ModelPrice",
    "PriceFileError",
    "PriceTier",
    "PriceTable",
    "UnknownModelPriceError",
    "cost_usd",
    "load_price_table",
    "read_price_file",
]

LONG_CONTEXT_THRESHOLD = (
    200_000  # Anthropic bills the whole request at the long-context rate above this input
)
# LiteLLM's long-context keys: `<class>_above_<N>k_tokens` (128k, 200k, 256k, 272k, ...). Service-tier
# variants (`..._priority`, `..._flex`) and `cache_creation_input_token_cost_above_1hr_above_200k_tokens` do
# not match.
_TIER_KEY = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|cache_creation_input_token_cost|cache_read_input_token_cost)"
    r"_above_(\d+)k_tokens$"
)
_TIER_CLASSES = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_creation_input_token_cost": "cache_creation",
    "cache_read_input_token_cost": "cache_read",
}
_CHAT_MODES = frozenset({"chat", "responses"})  # LiteLLM's modes of models a replay can call
# Prefixes that name the vendor whose own keys are unprefixed in LiteLLM's file (`openai/gpt-4o` is
# `gpt-4o`); any other prefix (`azure/`, `bedrock/`, `vertex_ai/`, ...) is priced by its own entry or refused.
_SAME_VENDOR_PREFIXES = ("openai/", "anthropic/")
_log = logging.getLogger(__name__)


class UnknownModelPriceError(ShadowlabError, KeyError):
    """No price for a model: the experiment must not start (a missing price is never $0)."""

    exit_code = 2

    def __init__(self, model: str, known: list[str], why: str | None = None) -> None:
        self.model = model
        hint = f"; similar: {', '.join(known[:5])}" if known else ""
        expected = why or "expected an entry in prices.json or SHADOWLAB_PRICES_FILE"
        super().__init__(f"price of model {model!r}: {expected}{hint}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PriceFileError(ConfigError):
    """A price file that cannot be read or has a malformed entry."""


def _rate(model: str, entry: Mapping[str, Any], key: str, required: bool = False) -> float | None:
    value = entry.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or not math.isfinite(value):
        raise PriceFileError(
            f"price of {model!r}: {key}: expected a number of USD per token >= 0, found {value!r}"
        )
    return float(value)


@dataclass(frozen=True)
class PriceTier:
    """Rates of a request whose input is above `above_tokens` (LiteLLM's `*_above_<N>k_tokens` keys): the
    whole request is billed at them; a class the tier does not name keeps its base rate."""

    above_tokens: int
    input: float | None = None
    output: float | None = None
    cache_creation: float | None = None
    cache_read: float | None = None

    def to_json(self) -> dict[str, float]:
        suffix = f"_above_{self.above_tokens // 1000}k_tokens"
        rates = ((key + suffix, getattr(self, name)) for key, name in _TIER_CLASSES.items())
        return {key: value for key, value in rates if value is not None}


def _tiers(model: str, entry: Mapping[str, Any]) -> tuple[PriceTier, ...]:
    found: dict[int, dict[str, float | None]] = {}
    for key in entry:
        match = _TIER_KEY.match(key)
        if match is not None:
            found.setdefault(int(match[2]) * 1000, {})[_TIER_CLASSES[match[1]]] = _rate(model, entry, key)
    return tuple(PriceTier(above, **rates) for above, rates in sorted(found.items()))


@dataclass(frozen=True)
class ModelPrice:
    """USD per token of each class. Optional classes fall back: cache writes and reads → input price, 1-hour
    cache writes → 5-minute ones, reasoning → output price; long-context `tiers` apply above their size."""

    model: str
    input: float
    output: float
    cache_creation: float | None = None
    cache_creation_1h: float | None = None
    cache_read: float | None = None
    reasoning: float | None = None
    tiers: tuple[PriceTier, ...] = ()

    @classmethod
    def from_litellm(cls, model: str, entry: Mapping[str, Any]) -> ModelPrice:
        return cls(
            model=model,
            input=_rate(model, entry, "input_cost_per_token", True) or 0.0,
            output=_rate(model, entry, "output_cost_per_token", True) or 0.0,
            cache_creation=_rate(model, entry, "cache_creation_input_token_cost"),
            cache_creation_1h=_rate(model, entry, "cache_creation_input_token_cost_above_1hr"),
            cache_read=_rate(model, entry, "cache_read_input_token_cost"),
            reasoning=_rate(model, entry, "output_cost_per_reasoning_token"),
            tiers=_tiers(model, entry),
        )

    def tier_for(self, input_tokens: int) -> PriceTier | None:
        """The largest tier whose size the request's input exceeds, if any."""
        return next((t for t in reversed(self.tiers) if input_tokens > t.above_tokens), None)

    def dearest_input_rate(self) -> float:
        """The highest rate an input token can cost: input, cache writes (5-minute, 1-hour) and every
        long-context tier's input and cache-write rates (budget reservations assume the worst case)."""
        rates = [self.input, self.cache_creation, self.cache_creation_1h]
        rates += [rate for tier in self.tiers for rate in (tier.input, tier.cache_creation)]
        return max(rate for rate in rates if rate is not None)

    def dearest_output_rate(self) -> float:
        """The highest rate an output token can cost: output, reasoning and every tier's output rate."""
        rates = [self.output, self.reasoning, *(tier.output for tier in self.tiers)]
        return max(rate for rate in rates if rate is not None)

    def to_json(self) -> dict[str, float]:
        """The entry in LiteLLM's format."""
        base = {
            "input_cost_per_token": self.input,
            "output_cost_per_token": self.output,
            "cache_creation_input_token_cost": self.cache_creation,
            "cache_creation_input_token_cost_above_1hr": self.cache_creation_1h,
            "cache_read_input_token_cost": self.cache_read,
            "output_cost_per_reasoning_token": self.reasoning,
        }
        out = {key: value for key, value in base.items() if value is not None}
        for tier in self.tiers:
            out |= tier.to_json()
        return out


def cost_usd(usage: Usage, price: ModelPrice) -> float:
    """Dollars for one call: uncached input, 5-minute and 1-hour cache writes, cache reads, output (reasoning
    priced separately only where the model has its own reasoning rate), all at the long-context tier the
    request's input reaches."""
    tier = price.tier_for(usage.total_input_tokens)
    input_rate = tier.input if tier is not None and tier.input is not None else price.input
    output_rate = tier.output if tier is not None and tier.output is not None else price.output
    write = tier.cache_creation if tier is not None else None
    write = (
        write
        if write is not None
        else (price.cache_creation if price.cache_creation is not None else input_rate)
    )
    write_1h = price.cache_creation_1h if price.cache_creation_1h is not None else write
    read = tier.cache_read if tier is not None else None
    read = read if read is not None else (price.cache_read if price.cache_read is not None else input_rate)
    reasoning = (usage.reasoning_tokens or 0) if price.reasoning is not None else 0
    return math.fsum(
        (
            usage.input_tokens * input_rate,
            (usage.cache_creation_input_tokens - usage.cache_creation_1h_input_tokens) * write,
            usage.cache_creation_1h_input_tokens * write_1h,
            usage.cache_read_input_tokens * read,
            (usage.output_tokens - reasoning) * output_rate,
            reasoning * (price.reasoning or 0.0),
        )
    )


def _skip_reason(entry: Mapping[str, Any]) -> str | None:
    """Why a LiteLLM entry cannot price a replayed call (None: it can)."""
    mode = entry.get("mode")
    if mode is not None and mode not in _CHAT_MODES:
        return f"mode {mode}, not a chat model"
    if entry.get("input_cost_per_token") is None or entry.get("output_cost_per_token") is None:
        return "no input or output price per token"
    return None


class PriceTable:
    """Prices by model name; `openai/` and `anthropic/` names fall back to the unprefixed entry, other
    provider-qualified names (`azure/gpt-4o`) are priced by their own entry only. `skipped`: entries of the
    file that cannot price a chat call (embedding or image models, null prices), with the reason; `sources`:
    the file (and its date) each price was read from."""

    def __init__(
        self,
        prices: Mapping[str, ModelPrice],
        skipped: Mapping[str, str] | None = None,
        sources: Mapping[str, str] | None = None,
    ) -> None:
        self._prices = dict(prices)
        self.skipped = dict(skipped or {})
        self.sources = dict(sources or {})

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self._find(model) is not None

    def models(self) -> tuple[str, ...]:
        return tuple(sorted(self._prices))

    def _find(self, model: str) -> ModelPrice | None:
        found = self._prices.get(model)
        if found is None and model.startswith(_SAME_VENDOR_PREFIXES):
            found = self._prices.get(model.split("/", 1)[1])
        return found

    def source_of(self, model: str) -> str:
        """The file (and its date) the price of `model` was read from; UnknownModelPriceError as `price`."""
        return self.sources.get(self.price(model).model, "")

    def price(self, model: str) -> ModelPrice:
        """The price of `model`; UnknownModelPriceError names it (and similar known names)."""
        found = self._find(model)
        if found is not None:
            return found
        stem = model.split("/")[-1][:8]
        qualified = "/" in model and not model.startswith(_SAME_VENDOR_PREFIXES)
        prefix = model.rsplit("/", 1)[0] + "/" if qualified else ""  # suggest only the same provider's names
        similar = [
            m for m in sorted(self._prices) if m.startswith(prefix) and m.split("/")[-1].startswith(stem)
        ]
        why = None
        if model in self.skipped:
            why = f"its price-file entry cannot price a chat call ({self.skipped[model]})"
        elif qualified:
            why = "a provider-qualified name needs its own entry (never priced as another vendor's model)"
        raise UnknownModelPriceError(model, similar, why)

    def require(self, models: list[str] | tuple[str, ...]) -> None:
        """Fail before an experiment starts if any of its models has no price."""
        for model in models:
            self.price(model)

    def cost(self, model: str, usage: Usage) -> float:
        """Dollars for one call of `model`."""
        return cost_usd(usage, self.price(model))

    def to_json(self) -> dict[str, Any]:
        """The table as LiteLLM-format JSON (for the experiment's snapshot); `from_json` reads it back."""
        return {model: price.to_json() for model, price in sorted(self._prices.items())}

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], where: str = "prices", source: str | None = None
    ) -> PriceTable:
        """Entries of a LiteLLM-format mapping that price chat calls by the token; the others (non-chat
        modes, null or missing prices) are counted in `skipped`; `sample_spec` and non-objects are ignored.
        `source` (default `where`) is what `sources` says each price came from."""
        if not isinstance(data, Mapping):
            raise PriceFileError(
                f"{where}: expected a JSON object of model → prices, found {type(data).__name__}"
            )
        prices: dict[str, ModelPrice] = {}
        skipped: dict[str, str] = {}
        for model, entry in data.items():
            if model == "sample_spec" or not isinstance(entry, Mapping):
                continue
            reason = _skip_reason(entry)
            if reason is None:
                prices[model] = ModelPrice.from_litellm(model, entry)
            else:
                skipped[model] = reason
        return cls(prices, skipped, dict.fromkeys(prices, source or where))

    def skipped_counts(self) -> dict[str, int]:
        """How many entries were skipped, by reason."""
        return dict(Counter(self.skipped.values()))

    def skipped_summary(self) -> str:
        """'1364 entries skipped (they cannot price a chat call): 414 mode image_generation, …' or ''."""
        if not self.skipped:
            return ""
        counts = sorted(self.skipped_counts().items(), key=lambda item: (-item[1], item[0]))
        reasons = ", ".join(
            f"{count} {reason.removesuffix(', not a chat model')}" for reason, count in counts
        )
        return f"{len(self.skipped)} entries skipped (they cannot price a chat call): {reasons}"

    def merged(self, override: PriceTable) -> PriceTable:
        prices = {**self._prices, **override._prices}
        skipped = {m: why for m, why in {**self.skipped, **override.skipped}.items() if m not in prices}
        return PriceTable(prices, skipped, {**self.sources, **override.sources})


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PriceFileError(f"{what} {path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise PriceFileError(f"{what} {path}: expected JSON ({exc})") from None


def _dated(label: str, data: Any, path: Path | None) -> str:
    """The file's label with its date: `sample_spec.checked` when it has one, else its modification day."""
    spec = data.get("sample_spec") if isinstance(data, Mapping) else None
    checked = spec.get("checked") if isinstance(spec, Mapping) else None
    if isinstance(checked, str) and checked:
        return f"{label} (checked {checked})"
    if path is None:
        return label
    return f"{label} (modified {datetime.fromtimestamp(path.stat().st_mtime, UTC):%Y-%m-%d})"


def read_price_file(path: Path, what: str = "SHADOWLAB_PRICES_FILE") -> PriceTable:
    """A LiteLLM-format price file alone (`what` names it in errors); PriceFileError when it is not one."""
    data = _read_json(path, what)
    return PriceTable.from_json(data, f"{what} {path}", _dated(str(path), data, path))


def load_price_table(override: Path | None = None) -> PriceTable:
    """The shipped prices; the models of `override` (a LiteLLM-format file) replace or add entries. What the
    file skipped is logged once (a warning: on stderr even where logging is not configured)."""
    shipped = json.loads(resources.files("shadowlab").joinpath("prices.json").read_text(encoding="utf-8"))
    table = PriceTable.from_json(
        shipped, "shadowlab/prices.json", _dated("shipped prices.json", shipped, None)
    )
    if override is not None:
        extra = read_price_file(override)
        if extra.skipped:
            _log.warning(
                "prices from %s: %d models; %s", override, len(extra.models()), extra.skipped_summary()
            )
        table = table.merged(extra)
    return table
