"""Cost from every token class, against hand-computed dollars (to 1e-9)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shadowlab.apis.anthropic import usage_from_anthropic
from shadowlab.apis.openai_chat import usage_from_openai
from shadowlab.pricing import ModelPrice, PriceFileError, UnknownModelPriceError, cost_usd, load_price_table
from shadowlab.usage import Usage

TABLE = load_price_table()

# (model, usage, dollars computed by hand from the published per-million prices)
CASES = [
    ("claude-sonnet-4-5", Usage(input_tokens=1000, output_tokens=500), 1000 * 3e-6 + 500 * 15e-6),
    (
        "claude-sonnet-4-5",
        usage_from_anthropic(
            {
                "input_tokens": 50,
                "cache_creation_input_tokens": 2000,
                "cache_read_input_tokens": 0,
                "output_tokens": 300,
            }
        ),
        50 * 3e-6 + 2000 * 3.75e-6 + 300 * 15e-6,
    ),
    (
        "claude-sonnet-4-5",
        usage_from_anthropic(
            {
                "input_tokens": 50,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 2000,
                "output_tokens": 300,
            }
        ),
        50 * 3e-6 + 2000 * 0.30e-6 + 300 * 15e-6,
    ),
    (
        "claude-opus-4-5",  # 1-hour cache writes at their own rate
        usage_from_anthropic(
            {
                "input_tokens": 10,
                "cache_creation_input_tokens": 1000,
                "output_tokens": 20,
                "cache_creation": {"ephemeral_1h_input_tokens": 400, "ephemeral_5m_input_tokens": 600},
            }
        ),
        10 * 5e-6 + 600 * 6.25e-6 + 400 * 10e-6 + 20 * 25e-6,
    ),
    (
        "gpt-5.4",  # above 272k input tokens the whole request is billed at the long-context rates
        Usage(input_tokens=250_000, cache_read_input_tokens=30_000, output_tokens=1000),
        250_000 * 5e-6 + 30_000 * 0.5e-6 + 1000 * 22.5e-6,
    ),
    (
        "gpt-4o",  # prompt_tokens includes the cached ones
        usage_from_openai(
            {
                "prompt_tokens": 3000,
                "completion_tokens": 200,
                "prompt_tokens_details": {"cached_tokens": 2048},
            }
        ),
        952 * 2.5e-6 + 2048 * 1.25e-6 + 200 * 10e-6,
    ),
    (
        "o4-mini",  # reasoning tokens are part of completion_tokens, billed once at the output rate
        usage_from_openai(
            {
                "prompt_tokens": 100,
                "completion_tokens": 900,
                "completion_tokens_details": {"reasoning_tokens": 700},
            }
        ),
        100 * 1.1e-6 + 900 * 4.4e-6,
    ),
    ("openai/gpt-4.1-mini", Usage(input_tokens=1_000_000, output_tokens=1_000_000), 0.4 + 1.6),
]


@pytest.mark.parametrize(("model", "usage", "dollars"), CASES)
def test_cost_equals_hand_computed_dollars(model: str, usage: Usage, dollars: float) -> None:
    assert TABLE.cost(model, usage) == pytest.approx(dollars, abs=1e-9)


def test_an_unknown_model_is_an_error_naming_it() -> None:
    with pytest.raises(UnknownModelPriceError, match=r"price of model 'claude-sonnet-9': expected an entry"):
        TABLE.cost("claude-sonnet-9", Usage())
    with pytest.raises(UnknownModelPriceError, match="gpt-99"):
        TABLE.require(["gpt-4o", "gpt-99"])


def test_the_user_file_overrides_and_adds_models(tmp_path: Path) -> None:
    override = tmp_path / "prices.json"
    override.write_text(
        json.dumps(
            {
                "gpt-4o": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},
                "my-vllm-model": {"input_cost_per_token": 0, "output_cost_per_token": 1e-7},
            }
        )
    )
    table = load_price_table(override)
    assert table.cost(
        "gpt-4o", Usage(input_tokens=10, cache_read_input_tokens=10, output_tokens=10)
    ) == pytest.approx(
        10e-6 + 10e-6 + 20e-6, abs=1e-12
    )  # no cache price in the override: reads at the input price
    assert table.cost("my-vllm-model", Usage(input_tokens=5, output_tokens=10)) == pytest.approx(
        1e-6, abs=1e-12
    )
    assert "claude-haiku-4-5" in table


def test_a_malformed_price_names_model_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "prices.json"
    bad.write_text(json.dumps({"x": {"input_cost_per_token": "cheap", "output_cost_per_token": 1e-6}}))
    with pytest.raises(PriceFileError, match=r"price of 'x': input_cost_per_token: expected a number"):
        load_price_table(bad)


def test_the_snapshot_round_trips() -> None:
    snapshot = TABLE.to_json()
    again = type(TABLE).from_json(json.loads(json.dumps(snapshot)))
    assert again.models() == TABLE.models()
    assert again.price("claude-sonnet-4-5") == TABLE.price("claude-sonnet-4-5")


def test_a_model_specific_reasoning_rate_prices_reasoning_apart() -> None:
    price = ModelPrice(model="r", input=1e-6, output=2e-6, reasoning=5e-6)
    usage = Usage(input_tokens=10, output_tokens=100, reasoning_tokens=60)
    assert cost_usd(usage, price) == pytest.approx(10e-6 + 40 * 2e-6 + 60 * 5e-6, abs=1e-12)
