"""LiteLLM's price file as `SHADOWLAB_PRICES_FILE`: non-chat and unpriced entries are skipped and counted (and
refused by name), every `*_above_<N>k_tokens` tier is understood, provider-qualified names stay distinct.

litellm is not a dependency (1.110.2 installs here; its real file was checked by hand, docs/providers.md), so
`price_files/litellm_prices_sample.json` is a sample in the format of its
`model_prices_and_context_window_backup.json` (null prices, `mode: embedding / image_generation /
audio_transcription`, tiered keys, service-tier variants such as `_priority` and `_flex`, `sample_spec`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowlab.apis import api_shape
from shadowlab.pricing import PriceTable, UnknownModelPriceError, load_price_table
from shadowlab.usage import Usage

SAMPLE = Path(__file__).parent / "price_files" / "litellm_prices_sample.json"


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return load_price_table(SAMPLE)


def test_the_file_loads_and_says_what_it_skipped(table: PriceTable) -> None:
    assert {"gpt-4o", "gpt-5", "gpt-5.4", "gemini/gemini-1.5-pro", "azure/gpt-4o-2024-05-13"} <= set(
        table.models()
    )
    assert table.skipped == {
        "text-embedding-3-small": "mode embedding, not a chat model",
        "1024-x-1024/dall-e-3": "mode image_generation, not a chat model",
        "whisper-1": "mode audio_transcription, not a chat model",
        "gpt-image-1": "mode image_generation, not a chat model",
        "openrouter/some-unpriced-chat-model": "no input or output price per token",
    }
    assert table.skipped_counts() == {
        "mode embedding, not a chat model": 1,
        "mode image_generation, not a chat model": 2,
        "mode audio_transcription, not a chat model": 1,
        "no input or output price per token": 1,
    }


def test_a_skipped_model_is_refused_saying_why(table: PriceTable) -> None:
    table.require(["gpt-4o", "gpt-5.4"])
    with pytest.raises(UnknownModelPriceError, match=r"'text-embedding-3-small'.*mode embedding, not a chat"):
        table.require(["gpt-4o", "text-embedding-3-small"])


def test_provider_qualified_names_are_never_priced_as_another_vendors_model(table: PriceTable) -> None:
    assert table.price("azure/gpt-4o-2024-05-13").input == 5e-06  # its own entry
    assert table.price("openai/gpt-4-turbo") is table.price("gpt-4-turbo")  # the same vendor's own name
    for name in ("azure/gpt-4-turbo", "bedrock/gpt-4o", "vertex_ai/gpt-4o"):
        with pytest.raises(UnknownModelPriceError, match="provider-qualified name needs its own entry"):
            table.price(name)


def test_a_responses_call_with_cached_and_reasoning_tokens_costs_the_hand_computed_dollars(
    table: PriceTable,
) -> None:
    usage = api_shape("openai.responses").usage(
        {
            "input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1024},
            "output_tokens": 300, "output_tokens_details": {"reasoning_tokens": 256},
        }
    )  # fmt: skip
    # gpt-5: $1.25 / M uncached input, $0.125 / M cached, $10 / M output (reasoning billed as output)
    assert table.cost("gpt-5", usage) == pytest.approx(
        176 * 1.25e-6 + 1024 * 0.125e-6 + 300 * 10e-6, abs=1e-12
    )


@pytest.mark.parametrize(
    ("model", "usage", "dollars"),
    [
        (
            "gemini/gemini-1.5-pro",
            Usage(input_tokens=128_000, output_tokens=10),
            128_000 * 3.5e-6 + 10 * 10.5e-6,
        ),
        ("gemini/gemini-1.5-pro", Usage(input_tokens=128_001, output_tokens=10), 128_001 * 7e-6 + 10 * 21e-6),
        (
            "dashscope/qwen3-coder-plus",
            Usage(input_tokens=200_000, output_tokens=10),
            200_000 * 3e-6 + 10 * 15e-6,
        ),
        (
            "dashscope/qwen3-coder-plus",
            Usage(input_tokens=300_000, output_tokens=10),
            300_000 * 6e-6 + 10 * 60e-6,
        ),
        (
            "claude-sonnet-4-5",
            Usage(input_tokens=150_000, cache_creation_input_tokens=40_000, cache_read_input_tokens=20_000),
            150_000 * 6e-6 + 40_000 * 7.5e-6 + 20_000 * 0.6e-6,
        ),
        (
            "gpt-5.4",  # above 272k the whole request, cached input too, at the tier; `_priority` ignored
            Usage(input_tokens=200_000, cache_read_input_tokens=100_000, output_tokens=1000),
            200_000 * 5e-6 + 100_000 * 0.5e-6 + 1000 * 22.5e-6,
        ),
        ("gpt-5.4", Usage(input_tokens=272_000, output_tokens=1000), 272_000 * 2.5e-6 + 1000 * 15e-6),
    ],
)
def test_every_long_context_tier_applies_above_its_size(
    table: PriceTable, model: str, usage: Usage, dollars: float
) -> None:
    assert table.cost(model, usage) == pytest.approx(dollars, abs=1e-12)


def test_the_snapshot_keeps_every_tier(table: PriceTable) -> None:
    snapshot = table.to_json()
    assert snapshot["dashscope/qwen3-coder-plus"] == {
        "input_cost_per_token": 1e-06,
        "output_cost_per_token": 5e-06,
        "input_cost_per_token_above_128k_tokens": 3e-06,
        "output_cost_per_token_above_128k_tokens": 1.5e-05,
        "input_cost_per_token_above_256k_tokens": 6e-06,
        "output_cost_per_token_above_256k_tokens": 6e-05,
    }
    again = PriceTable.from_json(snapshot)
    assert again.price("gpt-5.4") == table.price("gpt-5.4") and again.skipped == {}
