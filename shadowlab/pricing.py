"""Cost in USD from normalised usage, every token class (DESIGN §6).

Prices are USD per token in LiteLLM's `model_prices_and_context_window.json` format. The shipped
`prices.json` can be overridden per model by a user file (`SHADOWLAB_PRICES_FILE`). A model without a price is
an error, never a silent $0. `PriceTable.to_json()` is what an experiment snapshots when it starts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from shadowlab.errors import ConfigError, ShadowlabError
from shadowlab.usage import Usage

__all__ = [
    "LONG_CONTEXT_THRESHOLD",
    "ModelPrice",
    "PriceFileError",
    "PriceTable",
    "UnknownModelPriceError",
    "cost_usd",
    "load_price_table",
]

LONG_CONTEXT_THRESHOLD = (
    200_000  # Anthropic bills the whole request at the long-context rate above this input
)


class UnknownModelPriceError(ShadowlabError, KeyError):
    """No price for a model: the experiment must not start (a missing price is never $0)."""

    exit_code = 2

    def __init__(self, model: str, known: list[str]) -> None:
        self.model = model
        hint = f"; similar: {', '.join(known[:5])}" if known else ""
        super().__init__(
            f"price of model {model!r}: expected an entry in prices.json or SHADOWLAB_PRICES_FILE{hint}"
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PriceFileError(ConfigError):
    """A price file that cannot be read or has a malformed entry."""


@dataclass(frozen=True)
class ModelPrice:
    """USD per token of each class. Optional classes fall back: cache writes and reads → input price, 1-hour
    cache writes → 5-minute ones, reasoning → output price, long-context rates → none (not tiered)."""

    model: str
    input: float
    output: float
    cache_creation: float | None = None
    cache_creation_1h: float | None = None
    cache_read: float | None = None
    reasoning: float | None = None
    input_above_200k: float | None = None
    output_above_200k: float | None = None
    cache_creation_above_200k: float | None = None
    cache_read_above_200k: float | None = None

    @classmethod
    def from_litellm(cls, model: str, entry: Mapping[str, Any]) -> ModelPrice:
        def rate(key: str, required: bool = False) -> float | None:
            value = entry.get(key)
            if value is None and not required:
                return None
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or value < 0
                or not math.isfinite(value)
            ):
                raise PriceFileError(
                    f"price of {model!r}: {key}: expected a number of USD per token >= 0, found {value!r}"
                )
            return float(value)

        return cls(
            model=model,
            input=rate("input_cost_per_token", True) or 0.0,
            output=rate("output_cost_per_token", True) or 0.0,
            cache_creation=rate("cache_creation_input_token_cost"),
            cache_creation_1h=rate("cache_creation_input_token_cost_above_1hr"),
            cache_read=rate("cache_read_input_token_cost"),
            reasoning=rate("output_cost_per_reasoning_token"),
            input_above_200k=rate("input_cost_per_token_above_200k_tokens"),
            output_above_200k=rate("output_cost_per_token_above_200k_tokens"),
            cache_creation_above_200k=rate("cache_creation_input_token_cost_above_200k_tokens"),
            cache_read_above_200k=rate("cache_read_input_token_cost_above_200k_tokens"),
        )


def cost_usd(usage: Usage, price: ModelPrice) -> float:
    """Dollars for one call: uncached input, 5-minute and 1-hour cache writes, cache reads, output (reasoning
    priced separately only where the model has its own reasoning rate)."""
    long = price.input_above_200k is not None and usage.total_input_tokens > LONG_CONTEXT_THRESHOLD
    input_rate = price.input_above_200k if long and price.input_above_200k is not None else price.input
    output_rate = price.output_above_200k if long and price.output_above_200k is not None else price.output
    write = price.cache_creation_above_200k if long else None
    write = (
        write
        if write is not None
        else (price.cache_creation if price.cache_creation is not None else input_rate)
    )
    write_1h = price.cache_creation_1h if price.cache_creation_1h is not None else write
    read = price.cache_read_above_200k if long else None
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


class PriceTable:
    """Prices by model name; lookups try the exact name, then without a `provider/` prefix."""

    def __init__(self, prices: Mapping[str, ModelPrice]) -> None:
        self._prices = dict(prices)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self._find(model) is not None

    def models(self) -> tuple[str, ...]:
        return tuple(sorted(self._prices))

    def _find(self, model: str) -> ModelPrice | None:
        found = self._prices.get(model)
        if found is None and "/" in model:
            found = self._prices.get(model.split("/", 1)[1])
        return found

    def price(self, model: str) -> ModelPrice:
        """The price of `model`; UnknownModelPriceError names it (and similar known names)."""
        found = self._find(model)
        if found is None:
            stem = model.split("/")[-1][:8]
            raise UnknownModelPriceError(model, [m for m in sorted(self._prices) if m.startswith(stem)])
        return found

    def require(self, models: list[str] | tuple[str, ...]) -> None:
        """Fail before an experiment starts if any of its models has no price."""
        for model in models:
            self.price(model)

    def cost(self, model: str, usage: Usage) -> float:
        """Dollars for one call of `model`."""
        return cost_usd(usage, self.price(model))

    def to_json(self) -> dict[str, Any]:
        """The table as LiteLLM-format JSON (for the experiment's snapshot); `from_json` reads it back."""
        names = {
            "input": "input_cost_per_token",
            "output": "output_cost_per_token",
            "cache_creation": "cache_creation_input_token_cost",
            "cache_creation_1h": "cache_creation_input_token_cost_above_1hr",
            "cache_read": "cache_read_input_token_cost",
            "reasoning": "output_cost_per_reasoning_token",
            "input_above_200k": "input_cost_per_token_above_200k_tokens",
            "output_above_200k": "output_cost_per_token_above_200k_tokens",
            "cache_creation_above_200k": "cache_creation_input_token_cost_above_200k_tokens",
            "cache_read_above_200k": "cache_read_input_token_cost_above_200k_tokens",
        }
        return {
            model: {names[k]: v for k, v in asdict(price).items() if k != "model" and v is not None}
            for model, price in sorted(self._prices.items())
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "prices") -> PriceTable:
        """Entries of a LiteLLM-format mapping with token prices (others, like `sample_spec`, are skipped)."""
        if not isinstance(data, Mapping):
            raise PriceFileError(
                f"{where}: expected a JSON object of model → prices, found {type(data).__name__}"
            )
        return cls(
            {
                model: ModelPrice.from_litellm(model, entry)
                for model, entry in data.items()
                if model != "sample_spec"
                and isinstance(entry, Mapping)
                and ("input_cost_per_token" in entry or "output_cost_per_token" in entry)
            }
        )

    def merged(self, override: PriceTable) -> PriceTable:
        return PriceTable({**self._prices, **override._prices})


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PriceFileError(f"SHADOWLAB_PRICES_FILE {path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise PriceFileError(f"SHADOWLAB_PRICES_FILE {path}: expected JSON ({exc})") from None


def load_price_table(override: Path | None = None) -> PriceTable:
    """The shipped prices; the models of `override` (a LiteLLM-format file) replace or add entries."""
    shipped = json.loads(resources.files("shadowlab").joinpath("prices.json").read_text(encoding="utf-8"))
    table = PriceTable.from_json(shipped, "shadowlab/prices.json")
    if override is not None:
        table = table.merged(PriceTable.from_json(_read_json(override), str(override)))
    return table
