"""`shadowlab prices show` and `prices import` on LiteLLM's format, and what an experiment start refuses:
an embedding-only model, another vendor's price for a provider-qualified name."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app, main
from shadowlab.experiment import ExperimentSpecError, check_startable, parse_spec
from shadowlab.pricing import PriceTable, UnknownModelPriceError, load_price_table, read_price_file

SAMPLE = Path(__file__).parent / "price_files" / "litellm_prices_sample.json"
SPEC: dict[str, Any] = {
    "name": "embed",
    "control": {"name": "control", "provider": "openai", "model": "gpt-4o"},
    "candidates": [{"name": "cand", "provider": "openai", "model": "text-embedding-3-small"}],
    "allowed_providers": ["openai"],
    "budget": {"usd": 5},
    "plan": {"primary_metric": "judge_score"},
}


def invoke(*args: str, prices: Path | None = SAMPLE) -> Any:
    env = {"SHADOWLAB_PRICES_FILE": str(prices) if prices is not None else None}
    return CliRunner().invoke(app, list(args), env=env)


def test_show_gives_every_class_and_tier_with_the_source_and_its_date() -> None:
    shipped = invoke("prices", "show", "claude-sonnet-4-5", prices=None)
    assert shipped.exit_code == 0, shipped.output
    lines = shipped.output.splitlines()
    assert lines[0] == "claude-sonnet-4-5: from shipped prices.json (checked 2026-12-06, litellm 1.110.2)"
    assert "  input:               3e-06 USD/token = $3 per million" in lines
    assert "  cache write (1 h):   6e-06 USD/token = $6 per million" in lines
    tiered = invoke("prices", "show", "gpt-5.4", prices=None).output.splitlines()
    assert tiered[-1].startswith("  input above 272,000 tokens (the whole request): input 5e-06 USD/token")
    qualified = invoke("prices", "show", "openai/gpt-5.4")
    assert qualified.output.startswith(
        f"openai/gpt-5.4 (priced by its entry 'gpt-5.4'): from {SAMPLE} (modified "
    )
    tiers = [line for line in qualified.output.splitlines() if "input above" in line]
    assert [line.split(" tokens")[0].strip() for line in tiers] == ["input above 272,000"]


def test_show_refuses_another_vendors_price_and_a_skipped_model() -> None:
    azure = invoke("prices", "show", "azure/gpt-4o")
    assert isinstance(azure.exception, UnknownModelPriceError) and azure.exception.exit_code == 2
    assert "needs its own entry" in str(azure.exception) and "similar: azure/gpt-4o-2024-05-13" in str(
        azure.exception
    )
    embedding = invoke("prices", "show", "text-embedding-3-small")
    assert "mode embedding, not a chat model" in str(embedding.exception)


def test_import_reports_skipped_entries_by_reason_and_writes_a_dated_file(tmp_path: Path) -> None:
    out = tmp_path / "prices.json"
    done = invoke("prices", "import", str(SAMPLE), "--out", str(out), prices=None)
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    table = read_price_file(SAMPLE)
    assert lines[0] == f"{SAMPLE}: {len(table.models())} models priced"
    assert lines[1] == (
        "  5 entries skipped (they cannot price a chat call): 2 mode image_generation, "
        "1 mode audio_transcription, 1 mode embedding, 1 no input or output price per token"
    )
    assert (
        lines[-1]
        == f"to use it: SHADOWLAB_PRICES_FILE={out.resolve()} (its models replace the shipped prices)"
    )
    written = json.loads(out.read_text())
    assert written["sample_spec"]["checked"] and "text-embedding-3-small" not in written
    again = PriceTable.from_json(written)
    assert again.price("gpt-5.4").tiers == table.price("gpt-5.4").tiers
    assert invoke("prices", "show", "gpt-5.4", prices=out).output.startswith(f"gpt-5.4: from {out} (checked ")


def test_import_of_a_malformed_file_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"m": {"input_cost_per_token": -1, "output_cost_per_token": 1}}))
    monkeypatch.setattr(sys, "argv", ["shadowlab", "prices", "import", str(bad)])
    with pytest.raises(SystemExit) as exited:
        main()  # the console entry point, in this process
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: price of 'm': input_cost_per_token: expected a number of USD per token >= 0, found -1"
    ]


def test_an_embedding_only_model_is_refused_at_experiment_start_saying_why() -> None:
    with pytest.raises(ExperimentSpecError) as caught:
        check_startable(parse_spec(SPEC), load_price_table(SAMPLE))
    assert str(caught.value).endswith(
        "(arm 'cand'): price of model 'text-embedding-3-small': its price-file entry cannot price a chat "
        "call (mode embedding, not a chat model)"
    )
